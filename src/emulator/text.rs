//! Tokens in and out of the emulator: prompt blocks are hashed for prefix caching, and output
//! text, lengths and embedding vectors are drawn from seeded generators so runs are
//! reproducible. Prompts are counted by [`crate::api::tokens`].

use crate::emulator::engine::kv::BLOCK_TOKENS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv(mut h: u64, tokens: &[u32]) -> u64 {
    for t in tokens {
        for b in t.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// Chained hashes of each full 512-token block: block i's hash covers blocks 0..=i, so two
/// prompts share leading hashes exactly when they share that prefix.
pub fn block_hashes(tokens: &[u32]) -> Vec<u64> {
    let mut h = FNV_OFFSET;
    tokens
        .chunks_exact(BLOCK_TOKENS as usize)
        .map(|c| {
            h = fnv(h, c);
            h
        })
        .collect()
}

/// A stable hash of a token sequence.
pub fn tokens_hash(tokens: &[u32]) -> u64 {
    fnv(FNV_OFFSET, tokens)
}

/// Output words: each a single cl100k token with its leading space, so that re-tokenising the
/// output gives back the number of tokens the engine emitted.
pub const WORDS: &[&str] = &[
    " the", " of", " and", " to", " in", " is", " that", " for", " it", " as", " with", " on", " be", " by", " this",
    " are", " from", " at", " or", " an", " can", " which", " have", " not", " we", " model", " token", " time",
    " data", " value", " price", " work", " system", " cost", " each", " more", " when", " will", " one", " all",
    " there", " their", " they", " has", " but", " was", " what", " so", " if", " about", " use", " into", " than",
    " then", " its", " other", " only", " new", " some", " could", " these", " two", " may", " first",
];

/// A request's seeded random source.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Index into [`WORDS`] of the next output token.
pub fn next_word(rng: &mut ChaCha8Rng) -> usize {
    rng.random_range(0..WORDS.len())
}

/// Log-normal parameters of output length when the client does not force it, fitted on the
/// Azure 2023 conversation trace (median 129 tokens; log-sd 0.86).
const OUTPUT_LOG_MEDIAN: f64 = 4.8598; // ln(129)
const OUTPUT_LOG_SD: f64 = 0.86;

/// Draws an output length within `[min, max]`.
pub fn sample_output_len(rng: &mut ChaCha8Rng, min: u32, max: u32) -> u32 {
    // Box-Muller from two uniforms.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let len = (OUTPUT_LOG_MEDIAN + OUTPUT_LOG_SD * z).exp().round() as u32;
    len.clamp(min.min(max), max)
}

/// A deterministic unit vector for `tokens`: equal inputs give equal vectors; similar inputs do
/// not give similar vectors (these embeddings are not semantic).
pub fn embedding(tokens: &[u32], dims: usize) -> Vec<f32> {
    let mut r = rng(tokens_hash(tokens));
    let mut v: Vec<f32> = (0..dims).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// `s` as a JSON string literal, quotes included.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_words_are_single_tokens() {
        for w in WORDS {
            assert_eq!(crate::api::tokens::count_text(w), 1, "{w:?}");
        }
    }

    #[test]
    fn shared_prefixes_share_leading_block_hashes() {
        let a: Vec<u32> = (0..1600).collect();
        let mut b = a.clone();
        b[1100] = 7;
        let (ha, hb) = (block_hashes(&a), block_hashes(&b));
        assert_eq!(ha.len(), 3);
        assert_eq!(ha[..2], hb[..2]);
        assert_ne!(ha[2], hb[2]);
    }

    #[test]
    fn output_lengths_respect_bounds_and_centre_near_the_trace_median() {
        let mut r = rng(1);
        let mut v: Vec<u32> = (0..4001).map(|_| sample_output_len(&mut r, 1, 4000)).collect();
        v.sort();
        assert!((100..=160).contains(&v[2000]), "median {}", v[2000]);
        assert!(v.iter().all(|x| (1..=4000).contains(x)));
        assert_eq!(sample_output_len(&mut r, 50, 50), 50);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let e = embedding(&[1, 2, 3], 384);
        assert_eq!(e, embedding(&[1, 2, 3], 384));
        assert_ne!(e, embedding(&[1, 2, 4], 384));
        let n: f32 = e.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
    }
}
