//! Incremental server-sent-events framing: bytes in, whole events out, each with its raw bytes
//! (forwarded unchanged) and its `data` payload (inspected for usage).

use bytes::{Bytes, BytesMut};

#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: BytesMut,
}

/// One event: the raw bytes including its terminating blank line, and its data lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub raw: Bytes,
    pub data: String,
}

/// Longest event accepted; an upstream that sends more without a blank line is broken.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl SseSplitter {
    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, sep)) = find_boundary(&self.buf) {
            let raw = self.buf.split_to(end + sep).freeze();
            out.push(SseEvent { data: data_of(&raw[..end]), raw });
        }
        out
    }

    /// Bytes of an unfinished event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Position and length of the first blank-line separator (`\n\n` or `\r\n\r\n`).
fn find_boundary(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\n' {
            if b[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if b[i + 1] == b'\r' && b.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

fn data_of(event: &[u8]) -> String {
    let text = String::from_utf8_lossy(event);
    let mut data = String::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunk_boundaries() {
        let mut s = SseSplitter::default();
        assert!(s.push(b"data: {\"a\":").is_empty());
        let ev = s.push(b"1}\n\ndata: [DONE]\r\n\r\n: comment");
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(&ev[0].raw[..], b"data: {\"a\":1}\n\n");
        assert_eq!(ev[1].data, "[DONE]");
        assert_eq!(s.pending(), b": comment".len());
    }
}
