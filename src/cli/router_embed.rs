//! Sentence embeddings of router data for `tollgate router train|eval --model-dir`: each prompt's
//! head (its first 256 tokens) embedded in process by the same model and code the gateway uses,
//! optionally kept in a cache file so that training and evaluation embed each prompt once.

use crate::cache::local::LocalModel;
use crate::routing::data::Row;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"tollgate-embeddings/1\n";
/// Prompts embedded per call (the model batches them by length inside).
const CHUNK: usize = 256;

/// The name a router records for the embeddings model in `dir`: its last two path components
/// (`minilm-0.1.0/model` as `scripts/install-embeddings.sh` installs it).
pub fn model_name(dir: &Path) -> String {
    let parts: Vec<String> = dir.components().rev().take(2).map(|c| c.as_os_str().to_string_lossy().into()).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

fn key(model: &str, text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    h.finalize().into()
}

fn read_cache(path: &Path) -> anyhow::Result<HashMap<[u8; 32], Vec<f32>>> {
    let mut out = HashMap::new();
    let Ok(mut f) = std::fs::File::open(path) else { return Ok(out) };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let body =
        bytes.strip_prefix(MAGIC).ok_or_else(|| anyhow::anyhow!("{} is not an embeddings cache", path.display()))?;
    let (dim, mut rest) = body.split_at_checked(4).ok_or_else(|| anyhow::anyhow!("{}: truncated", path.display()))?;
    let dim = u32::from_le_bytes(dim.try_into()?) as usize;
    let record = 32 + 4 * dim;
    while rest.len() >= record {
        let (r, tail) = rest.split_at(record);
        let v = r[32..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.insert(r[..32].try_into()?, v);
        rest = tail;
    }
    Ok(out)
}

fn append_cache(path: &Path, dim: usize, new: &[([u8; 32], &[f32])]) -> anyhow::Result<()> {
    let fresh = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = Vec::with_capacity(new.len() * (32 + 4 * dim) + 32);
    if fresh {
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&(dim as u32).to_le_bytes());
    }
    for (k, v) in new {
        buf.extend_from_slice(k);
        v.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
    }
    f.write_all(&buf)?;
    Ok(())
}

/// Fills each row's `embedding` with the model in `dir`, reading and extending `cache` if given.
/// Returns the model's name for the router's record.
pub fn embed_rows(rows: &mut [Row], dir: &Path, cache: Option<&Path>) -> anyhow::Result<String> {
    let name = model_name(dir);
    let mut known = match cache {
        Some(c) => read_cache(c)?,
        None => HashMap::new(),
    };
    let missing: Vec<usize> = (0..rows.len()).filter(|&i| !known.contains_key(&key(&name, &rows[i].text))).collect();
    if !missing.is_empty() {
        let model = LocalModel::load(dir)?;
        let started = std::time::Instant::now();
        for (n, chunk) in missing.chunks(CHUNK).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| rows[i].text.as_str()).collect();
            let vectors = model.embed_head(&texts)?;
            let keys: Vec<[u8; 32]> = chunk.iter().map(|&i| key(&name, &rows[i].text)).collect();
            if let (Some(c), Some(dim)) = (cache, vectors.first().map(Vec::len)) {
                let new: Vec<([u8; 32], &[f32])> =
                    keys.iter().copied().zip(vectors.iter().map(Vec::as_slice)).collect();
                append_cache(c, dim, &new)?;
            }
            known.extend(keys.into_iter().zip(vectors));
            eprintln!(
                "embedded {} of {} prompts ({:.0} s)",
                ((n + 1) * CHUNK).min(missing.len()),
                missing.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    for r in rows.iter_mut() {
        r.embedding = known.get(&key(&name, &r.text)).cloned().unwrap_or_default();
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_file_round_trips_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.bin");
        let (a, b) = (key("m", "one"), key("m", "two"));
        append_cache(&path, 2, &[(a, &[1.0, 2.0])]).unwrap();
        append_cache(&path, 2, &[(b, &[3.0, -4.5])]).unwrap();
        let back = read_cache(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[&a], vec![1.0, 2.0]);
        assert_eq!(back[&b], vec![3.0, -4.5]);
        assert_ne!(key("m", "one"), key("n", "one"));
        assert_eq!(model_name(Path::new("/x/minilm-0.1.0/model")), "minilm-0.1.0/model");
        std::fs::write(&path, b"something else").unwrap();
        assert!(read_cache(&path).is_err());
    }
}
