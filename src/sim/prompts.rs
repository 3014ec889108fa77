//! Prompts of exact token counts for replays of traces that carry only lengths (and, for some,
//! the hashes of shared leading blocks): what the live validation and load tools send.

/// A prompt of exactly `tokens` tokens (as the gateway and the emulator count them), unique to
/// request `i` from its first tokens so no two requests share a cached prefix (the traces carry
/// no prefix information; a prompt too short for the unique head is shorter than a cache block).
pub fn prompt(i: usize, tokens: u32) -> String {
    let mut head = format!("Request {i}:");
    let head_tokens = crate::api::tokens::count_text(&head);
    if head_tokens >= tokens as usize {
        head.clear();
    }
    let mut n = (tokens as usize).saturating_sub(if head.is_empty() { 0 } else { head_tokens });
    loop {
        let p = format!("{head}{}", " hello".repeat(n));
        let got = crate::api::tokens::count_text(&p);
        match got.cmp(&(tokens as usize)) {
            std::cmp::Ordering::Equal => return p,
            std::cmp::Ordering::Greater if n > 0 => n -= 1,
            std::cmp::Ordering::Less => n += 1,
            _ => return p,
        }
    }
}

/// A prompt of `tokens` tokens whose leading 512-token blocks are the trace's named blocks
/// (`hashes`), each exactly a cache block long so that the emulator's block hashes line up with
/// the trace's: requests naming the same leading blocks share a textual, hence a KV-cache,
/// prefix. The rest is unique to request `i`.
pub fn prefixed_prompt(i: usize, tokens: u32, hashes: &[u64]) -> String {
    let block = crate::emulator::engine::kv::BLOCK_TOKENS as usize;
    let full = (tokens as usize / block).min(hashes.len());
    let mut p = String::with_capacity(tokens as usize * 6);
    for h in &hashes[..full] {
        // The block's name, then " hello" (one token each) to fill the block.
        let name = format!(" Block {h}:");
        p.push_str(&name);
        p.push_str(&" hello".repeat(block.saturating_sub(crate::api::tokens::count_text(&name))));
    }
    let rest = tokens as usize - full * block;
    if rest > 0 {
        p.push_str(&prompt(i, rest as u32));
    }
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn prompts_have_the_exact_token_count() {
        for (i, n) in [(0, 1), (7, 2), (123, 5), (99_999, 700), (5, 3000)] {
            assert_eq!(crate::api::tokens::count_text(&super::prompt(i, n)), n as usize, "{i} {n}");
        }
    }

    #[test]
    fn prefixed_prompts_have_the_exact_token_count_and_whole_blocks() {
        let block = crate::emulator::engine::kv::BLOCK_TOKENS as usize;
        for (i, n, hashes) in [(1, 1500, vec![7, 12_345]), (2, 1024, vec![3, 4, 5]), (3, 600, vec![99_999_999])] {
            let p = super::prefixed_prompt(i, n, &hashes);
            assert_eq!(crate::api::tokens::count_text(&p), n as usize, "{i} {n}");
            let one = super::prefixed_prompt(i, block as u32, &hashes[..1]);
            assert_eq!(crate::api::tokens::count_text(&one), block, "one block is one cache block");
        }
    }
}
