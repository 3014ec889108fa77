//! Cheap text features of a prompt for the router: hashed word unigrams and bigrams (scaled to
//! unit length) and a few dense shape features (length, digits, multiple-choice layout). They
//! cost a few microseconds per prompt and need no model server.

use sha2::{Digest, Sha256};

/// Dense features, in order; the model file names them so a reader can see what was learnt.
pub const DENSE: &[&str] = &["log_chars", "log_words", "digit_share", "numbers", "choices", "question_marks"];

/// A prompt's features: sparse (bucket, weight) pairs and the dense values.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub sparse: Vec<(u32, f32)>,
    pub dense: [f32; 6],
}

fn bucket(a: &str, b: &str, buckets: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(a.as_bytes());
    h.update([0]);
    h.update(b.as_bytes());
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]) % buckets
}

pub fn extract(text: &str, buckets: u32) -> Features {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut sparse: Vec<(u32, f32)> = Vec::with_capacity(words.len() * 2);
    for (i, w) in words.iter().enumerate() {
        sparse.push((bucket(w, "", buckets), 1.0));
        if let Some(next) = words.get(i + 1) {
            sparse.push((bucket(w, next, buckets), 1.0));
        }
    }
    sparse.sort_unstable_by_key(|p| p.0);
    sparse.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            true
        } else {
            false
        }
    });
    let norm = sparse.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt().max(1.0);
    sparse.iter_mut().for_each(|p| p.1 /= norm);
    let chars = text.chars().count() as f32;
    let digits = text.chars().filter(char::is_ascii_digit).count() as f32;
    let numbers = words.iter().filter(|w| w.chars().all(|c| c.is_ascii_digit())).count() as f32;
    let choices = text
        .lines()
        .filter(|l| l.len() >= 2 && l.as_bytes()[1] == b'.' && l.as_bytes()[0].is_ascii_uppercase())
        .count();
    let dense = [
        (1.0 + chars).ln() / 8.0,
        (1.0 + words.len() as f32).ln() / 6.0,
        digits / chars.max(1.0),
        (1.0 + numbers).ln() / 3.0,
        (choices >= 2) as u8 as f32,
        text.matches('?').count().min(5) as f32 / 5.0,
    ];
    Features { sparse, dense }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_deterministic_normalised_and_see_the_layout() {
        let q = "Which is prime?\nA. 4\nB. 7\nC. 9\nAnswer:";
        let f = extract(q, 1 << 16);
        assert_eq!(f, extract(q, 1 << 16));
        let norm: f32 = f.sparse.iter().map(|p| p.1 * p.1).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(f.dense[4], 1.0);
        assert!(f.dense[3] > 0.0);
        assert_eq!(extract("plain words here", 1 << 16).dense[4], 0.0);
        assert!(extract("", 1 << 16).sparse.is_empty());
    }
}
