//! Keeping pairs: one JSON line per answered chat completion (`messages`: the request's, then the
//! answer's; `model`: the model that answered; `at_ms`), appended to the tenant's file of the day
//! (`YYYY-MM-DD.jsonl`, mode 0600, its folder 0700) on a blocking thread, off the response path.
//! Opening a new day's file first deletes the tenant's files older than the retention.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where and for how long one tenant's pairs are kept.
#[derive(Debug, Clone)]
pub struct Keeper {
    pub dir: PathBuf,
    pub retention_days: u32,
}

/// The record for a request's `messages` and the whole `chat.completion` that answered it;
/// `None` when the answer has no message.
pub fn record(messages: &Value, answer: &Value, model: &str, at_ms: i64) -> Option<Value> {
    let mut msgs = messages.as_array()?.clone();
    let message = answer.get("choices")?.get(0)?.get("message")?;
    let mut reply = serde_json::Map::new();
    reply.insert("role".into(), "assistant".into());
    for k in ["content", "tool_calls", "refusal"] {
        if let Some(v) = message.get(k).filter(|v| !v.is_null()) {
            reply.insert(k.into(), v.clone());
        }
    }
    msgs.push(Value::Object(reply));
    Some(json!({"messages": msgs, "model": model, "at_ms": at_ms}))
}

/// The day (UTC, `YYYY-MM-DD`) of a Unix time in milliseconds.
pub fn day(ms: i64) -> String {
    let (y, m, d) = crate::units::civil_date(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

impl Keeper {
    /// Appends `record` to the file of `at_ms`'s day, pruning old days when it starts a new file.
    pub fn append(&self, record: &Value, at_ms: i64) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let path = self.dir.join(format!("{}.jsonl", day(at_ms)));
        if !path.exists() {
            self.prune(at_ms)?;
        }
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        f.write_all(&line)
    }

    /// Deletes the day files older than the retention.
    pub fn prune(&self, now_ms: i64) -> std::io::Result<()> {
        let oldest = day(now_ms - i64::from(self.retention_days) * 86_400_000);
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            if let Some(d) = day_of(&p) {
                if d < oldest {
                    std::fs::remove_file(&p)?;
                }
            }
        }
        Ok(())
    }

    /// Appends on a blocking thread; a failure is logged (without the pair) and the pair lost.
    pub fn spawn_append(self, record: Value, at_ms: i64) {
        tokio::task::spawn_blocking(move || {
            if let Err(e) = self.append(&record, at_ms) {
                tracing::warn!(error = %e, dir = %self.dir.display(), "distillation: a pair could not be kept");
            }
        });
    }
}

/// The day a kept file holds (`YYYY-MM-DD.jsonl`), if it is one.
pub fn day_of(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?.strip_suffix(".jsonl")?;
    (name.len() == 10 && name.as_bytes()[4] == b'-' && name.as_bytes()[7] == b'-').then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(1_709_164_800_000), "2024-02-29");
        assert_eq!(day(1_735_689_599_999), "2024-12-31");
        assert_eq!(day(1_735_689_600_000), "2025-01-01");
    }

    #[test]
    fn pairs_are_kept_private_and_old_days_pruned() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let k = Keeper { dir: dir.path().join("acme"), retention_days: 2 };
        let messages = json!([{"role": "user", "content": "hi"}]);
        let answer = json!({"choices": [{"message": {"role": "assistant", "content": "hello", "refusal": null}}]});
        let r = record(&messages, &answer, "m", 0).unwrap();
        assert_eq!(r["messages"][1], json!({"role": "assistant", "content": "hello"}));
        let day_ms = 86_400_000;
        k.append(&r, 10 * day_ms).unwrap();
        k.append(&r, 10 * day_ms + 5).unwrap();
        let f = k.dir.join(format!("{}.jsonl", day(10 * day_ms)));
        assert_eq!(std::fs::read_to_string(&f).unwrap().lines().count(), 2);
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&k.dir).unwrap().permissions().mode() & 0o777, 0o700);
        // Three days on, a new day's file prunes the first (older than two days).
        k.append(&r, 13 * day_ms).unwrap();
        assert!(!f.exists());
        assert!(record(&messages, &json!({"choices": []}), "m", 0).is_none());
    }
}
