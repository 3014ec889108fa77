//! `tollgate export`: one tenant's kept pairs as an OpenAI chat fine-tuning file (one
//! `{"messages": [...]}` per line), oldest day first, each distinct conversation once (after
//! masking), with regex rules that mask text (emails, keys, numbers, or the operator's own) or
//! drop a pair whose text matches. Only the named tenant's folder is ever read.

use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;

/// What to mask (pattern, replacement) and what to drop.
#[derive(Debug, Default)]
pub struct Rules {
    pub mask: Vec<(Regex, String)>,
    pub drop: Vec<Regex>,
}

/// E-mail addresses.
pub const EMAILS: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}";
/// Secret-looking tokens: prefixed API keys (`sk-...`, `tg_...`) and long runs of key characters.
pub const KEYS: &str = r"\b(sk|pk|rk|tg|key|api)[-_][A-Za-z0-9_-]{12,}|\b[A-Za-z0-9+/_-]{32,}={0,2}";
/// Numbers (digits, with separators and decimals).
pub const NUMBERS: &str = r"\d+([.,]\d+)*";

impl Rules {
    /// The built-in masks chosen, then the operator's.
    pub fn new(
        emails: bool,
        keys: bool,
        numbers: bool,
        mask: &[String],
        drop: &[String],
    ) -> Result<Self, regex::Error> {
        let mut r = Rules::default();
        for (on, pat, with) in [(emails, EMAILS, "[email]"), (keys, KEYS, "[key]"), (numbers, NUMBERS, "[number]")] {
            if on {
                r.mask.push((Regex::new(pat)?, with.into()));
            }
        }
        for m in mask {
            // `PATTERN` masks with `[masked]`; `PATTERN=>REPLACEMENT` with the replacement.
            let (pat, with) = m.split_once("=>").unwrap_or((m, "[masked]"));
            r.mask.push((Regex::new(pat)?, with.into()));
        }
        r.drop = drop.iter().map(|d| Regex::new(d)).collect::<Result<_, _>>()?;
        Ok(r)
    }

    fn dropped(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.drop.iter().any(|d| d.is_match(s)),
            Value::Array(a) => a.iter().any(|x| self.dropped(x)),
            Value::Object(o) => o.values().any(|x| self.dropped(x)),
            _ => false,
        }
    }

    /// Masks every text in `v` but the structural fields (roles, types, ids).
    fn masked(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                for (re, with) in &self.mask {
                    if re.is_match(s) {
                        *s = re.replace_all(s, with.as_str()).into_owned();
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.masked(x)),
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if !matches!(k.as_str(), "role" | "type" | "id" | "tool_call_id") {
                        self.masked(x);
                    }
                }
            }
            _ => {}
        }
    }
}

/// What an export did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: usize,
    pub written: usize,
    pub duplicates: usize,
    pub dropped: usize,
    /// Lines that were not a kept pair (a torn last line after a crash, say).
    pub unreadable: usize,
}

/// Writes the pairs in `dir` (a tenant's folder) from day `since` (`YYYY-MM-DD`) on to `out`.
/// A tenant with no folder (never opted in) yields an empty file.
pub fn export(dir: &Path, since: Option<&str>, rules: &Rules, out: &mut impl Write) -> std::io::Result<Summary> {
    let mut s = Summary::default();
    let mut files: Vec<(String, std::path::PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| super::keep::day_of(&p).map(|d| (d, p)))
            .filter(|(d, _)| since.is_none_or(|s| d.as_str() >= s))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    let mut seen = HashSet::new();
    for (_, path) in files {
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            let line = line?;
            s.read += 1;
            let Some(mut messages) = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|mut v| v.get_mut("messages").map(Value::take))
                .filter(Value::is_array)
            else {
                s.unreadable += 1;
                continue;
            };
            if rules.dropped(&messages) {
                s.dropped += 1;
                continue;
            }
            rules.masked(&mut messages);
            let text = serde_json::to_string(&serde_json::json!({ "messages": messages }))?;
            if !seen.insert(Sha256::digest(text.as_bytes())) {
                s.duplicates += 1;
                continue;
            }
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
            s.written += 1;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::keep::{record, Keeper};
    use serde_json::json;

    #[test]
    fn masks_drops_and_deduplicates() {
        let dir = tempfile::tempdir().unwrap();
        let k = Keeper { dir: dir.path().join("acme"), retention_days: 30 };
        let pair = |q: &str, a: &str| {
            record(&json!([{"role": "user", "content": q}]), &json!({"choices": [{"message": {"content": a}}]}), "m", 0)
                .unwrap()
        };
        let day = 20_000 * 86_400_000;
        k.append(&pair("mail me at ann@example.com, order 12345", "done"), day).unwrap();
        k.append(&pair("mail me at bob@example.org, order 99", "done"), day).unwrap();
        k.append(&pair("my key is sk-abcdefghijklmnopqrstuv", "noted"), day + 86_400_000).unwrap();
        k.append(&pair("CONFIDENTIAL plan", "ok"), day + 86_400_000).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(k.dir.join(format!("{}.jsonl", crate::distill::keep::day(day))))
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        let rules = Rules::new(true, true, true, &[], &["CONFIDENTIAL".into()]).unwrap();
        let mut out = Vec::new();
        let s = export(&k.dir, None, &rules, &mut out).unwrap();
        assert_eq!(s, Summary { read: 5, written: 2, duplicates: 1, dropped: 1, unreadable: 1 });
        let lines: Vec<Value> =
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(
            lines[0],
            json!({"messages": [{"role": "user", "content": "mail me at [email], order [number]"},
            {"role": "assistant", "content": "done"}]})
        );
        assert_eq!(lines[1]["messages"][0]["content"], "my key is [key]");
        // From the second day on only; another folder (a tenant that never opted in) is empty.
        let mut out = Vec::new();
        let since = crate::distill::keep::day(day + 86_400_000);
        assert_eq!(export(&k.dir, Some(&since), &rules, &mut out).unwrap().written, 1);
        let mut out = Vec::new();
        assert_eq!(export(&dir.path().join("globex"), None, &rules, &mut out).unwrap(), Summary::default());
        assert!(out.is_empty());
        assert!(Rules::new(false, false, false, &["(".into()], &[]).is_err());
        let custom = Rules::new(false, false, false, &["order \\d+=>order N".into()], &[]).unwrap();
        let mut v = json!({"content": "order 7", "role": "order 7"});
        custom.masked(&mut v);
        assert_eq!(v, json!({"content": "order N", "role": "order 7"}));
    }
}
