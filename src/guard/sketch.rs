//! A prompt's sign for the extraction watch: the few hashes its signals need of the text (a
//! template's opening and closing words, the distinct content words), so the text itself is never
//! kept or logged.

use std::hash::{BuildHasher, Hasher};

/// Content words kept per prompt: enough to measure how broad a tenant's topics are.
pub const MAX_WORDS: usize = 32;

/// Words common enough to say nothing of a topic, among those of five letters or more.
const STOP: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "because",
    "before",
    "below",
    "between",
    "could",
    "doing",
    "during",
    "following",
    "other",
    "should",
    "their",
    "there",
    "these",
    "those",
    "through",
    "under",
    "until",
    "where",
    "which",
    "while",
    "would",
    "answer",
    "question",
    "given",
    "please",
];

/// What the watch keeps of one prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sign {
    /// The first three words, lower-cased and hashed: a template's opening.
    pub head: u64,
    /// The last three words: a template's closing.
    pub tail: u64,
    /// Distinct content words (five letters or more, not a stop word), hashed; at most
    /// [`MAX_WORDS`], the first ones met.
    pub words: Vec<u32>,
}

fn hasher() -> impl Hasher {
    foldhash::fast::FixedState::with_seed(0x7011_6a7e).build_hasher()
}

fn word_hash(w: &str) -> u64 {
    let mut h = hasher();
    for b in w.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    h.finish()
}

fn words_hash(ws: &[&str]) -> u64 {
    let mut h = hasher();
    for w in ws {
        h.write_u64(word_hash(w));
    }
    h.finish()
}

/// The sign of a prompt's text.
pub fn sign(text: &str) -> Sign {
    let all: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let head = words_hash(&all[..all.len().min(3)]);
    let tail = words_hash(&all[all.len().saturating_sub(3)..]);
    let mut words: Vec<u32> = Vec::with_capacity(MAX_WORDS);
    for w in &all {
        if words.len() == MAX_WORDS {
            break;
        }
        if w.len() < 5 || !w.chars().all(char::is_alphabetic) || STOP.iter().any(|s| s.eq_ignore_ascii_case(w)) {
            continue;
        }
        let h = word_hash(w) as u32;
        if !words.contains(&h) {
            words.push(h);
        }
    }
    Sign { head, tail, words }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_shares_its_opening_and_closing_words_whatever_it_wraps() {
        let a = sign("Explain step by step: why is the sky blue? Answer in detail.");
        let b = sign("EXPLAIN step by step: how do tides work? Answer in detail.");
        assert_eq!(a.head, b.head);
        assert_eq!(a.tail, b.tail);
        assert_ne!(a.words, b.words);
        let c = sign("Why is the sky blue?");
        assert_ne!(a.head, c.head);
    }

    #[test]
    fn content_words_are_distinct_long_and_not_stop_words() {
        let s = sign("Photosynthesis photosynthesis which about the chloroplast in a cell 12345");
        assert_eq!(s.words.len(), 2, "{s:?}");
        assert_eq!(sign("").words.len(), 0);
        let letter = |i: usize| char::from(b'a' + (i % 26) as u8);
        let long: Vec<String> = (0..100).map(|i| format!("words{}{}", letter(i), letter(i / 26))).collect();
        assert_eq!(sign(&long.join(" ")).words.len(), MAX_WORDS);
    }
}
