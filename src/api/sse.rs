//! Incremental server-sent-events framing: bytes in, whole events out, each with its raw bytes
//! (forwarded unchanged) and its `data` payload (inspected for usage). Events are slices of the
//! chunks they came in (no copy, no allocation) unless an event spans two chunks.

use bytes::{Bytes, BytesMut};

/// Appends `v` as one SSE `data:` event.
pub fn write_data(out: &mut Vec<u8>, v: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// `chunk` (whole events) with `field` (`"key":value,`) put first in every event whose data is a
/// JSON object (`data: {` at a line's start); other lines (`[DONE]`, comments) are unchanged.
/// Copies only when there is such an event.
pub fn with_leading_field(chunk: &Bytes, field: &[u8]) -> Bytes {
    const START: &[u8] = b"data: {";
    let at_line_start = |i: usize| i == 0 || chunk[i - 1] == b'\n';
    let starts: Vec<usize> = (0..chunk.len().saturating_sub(START.len() - 1))
        .filter(|&i| at_line_start(i) && chunk[i..].starts_with(START))
        .collect();
    if starts.is_empty() {
        return chunk.clone();
    }
    let mut out = BytesMut::with_capacity(chunk.len() + starts.len() * field.len());
    let mut from = 0;
    for s in starts {
        let cut = s + START.len();
        out.extend_from_slice(&chunk[from..cut]);
        // An empty object takes the field without its trailing comma.
        let empty = chunk.get(cut) == Some(&b'}');
        out.extend_from_slice(if empty { field.strip_suffix(b",").unwrap_or(field) } else { field });
        from = cut;
    }
    out.extend_from_slice(&chunk[from..]);
    out.freeze()
}

#[derive(Debug, Default)]
pub struct SseSplitter {
    /// The unfinished event's bytes so far.
    buf: BytesMut,
}

/// One event: the raw bytes including its terminating blank line, and its data lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub raw: Bytes,
    /// UTF-8 (checked when the event was framed; invalid bytes replaced).
    data: Bytes,
}

impl SseEvent {
    /// The event's data lines joined with newlines (empty for a comment or keep-alive).
    pub fn data(&self) -> &str {
        std::str::from_utf8(&self.data).unwrap_or_default()
    }

    /// The data as bytes (a slice of [`SseEvent::raw`] when it is one line).
    pub fn data_bytes(&self) -> &Bytes {
        &self.data
    }
}

/// Longest event accepted; an upstream that sends more without a blank line is broken.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl SseSplitter {
    /// Adds bytes; returns the events they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.push_bytes(Bytes::copy_from_slice(chunk), |e| out.push(e));
        out
    }

    /// Adds a chunk; hands each event it completes to `each`. The chunk is not copied unless
    /// it ends in (or continues) an unfinished event.
    pub fn push_bytes(&mut self, chunk: Bytes, mut each: impl FnMut(SseEvent)) {
        let mut rest = if self.buf.is_empty() {
            chunk
        } else {
            // Finish the pending event first: its end is within the first bytes of `chunk`
            // (a separator can straddle the cut, so look from a little before it).
            let from = self.buf.len().saturating_sub(3);
            self.buf.extend_from_slice(&chunk);
            match find_boundary(&self.buf[from..]) {
                None => return,
                Some((end, sep)) => {
                    let used = from + end + sep;
                    let raw = self.buf.split_to(used).freeze();
                    each(event(raw, end + from));
                    self.buf.split().freeze()
                }
            }
        };
        while let Some((end, sep)) = find_boundary(&rest) {
            let raw = rest.split_to(end + sep);
            each(event(raw, end));
        }
        if !rest.is_empty() {
            self.buf.extend_from_slice(&rest);
        }
    }

    /// Bytes of an unfinished event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Position and length of the first blank-line separator (`\n\n` or `\r\n\r\n`).
fn find_boundary(b: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &b[from..]).map(|i| i + from) {
        match b.get(i + 1) {
            Some(b'\n') => return Some((i, 2)),
            Some(b'\r') if b.get(i + 2) == Some(&b'\n') => return Some((i, 3)),
            None => return None,
            _ => from = i + 1,
        }
    }
    None
}

/// The event of `raw`, whose lines end at `end`.
fn event(raw: Bytes, end: usize) -> SseEvent {
    let body = &raw[..end];
    // The usual event is one `data:` line: its payload is a slice of `raw`.
    if let Some(d) = body.strip_prefix(b"data:") {
        if memchr::memchr(b'\n', d).is_none() {
            let d = d.strip_prefix(b" ").unwrap_or(d);
            let d = d.strip_suffix(b"\r").unwrap_or(d);
            if std::str::from_utf8(d).is_ok() {
                let start = end - d.len() - usize::from(body.ends_with(b"\r"));
                return SseEvent { data: raw.slice(start..start + d.len()), raw };
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let mut data = String::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    SseEvent { data: Bytes::from(data), raw }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_field_goes_into_every_json_event_and_nothing_else() {
        let chunk = Bytes::from_static(
            b"data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"data: {oops\"}}]}\n\n: keep-alive\n\ndata: {}\n\ndata: [DONE]\n\n",
        );
        let out = with_leading_field(&chunk, b"\"service_tier\":\"flex\",");
        let events = SseSplitter::default().push(&out);
        let data: Vec<&str> = events.iter().map(|e| e.data()).filter(|d| !d.is_empty()).collect();
        assert_eq!(data.len(), 3, "{data:?}");
        let first: serde_json::Value = serde_json::from_str(data[0]).unwrap();
        assert_eq!((first["service_tier"].as_str(), first["id"].as_str()), (Some("flex"), Some("x")));
        assert_eq!(first["choices"][0]["delta"]["content"], "data: {oops", "text inside a string is untouched");
        assert_eq!(data[1], "{\"service_tier\":\"flex\"}");
        assert_eq!(data[2], "[DONE]");
        let plain = Bytes::from_static(b"data: [DONE]\n\n");
        assert_eq!(with_leading_field(&plain, b"\"a\":1,"), plain);
    }

    #[test]
    fn splits_events_across_chunk_boundaries() {
        let mut s = SseSplitter::default();
        assert!(s.push(b"data: {\"a\":").is_empty());
        let ev = s.push(b"1}\n\ndata: [DONE]\r\n\r\n: comment");
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data(), "{\"a\":1}");
        assert_eq!(&ev[0].raw[..], b"data: {\"a\":1}\n\n");
        assert_eq!(ev[1].data(), "[DONE]");
        assert_eq!(s.pending(), b": comment".len());
    }

    #[test]
    fn every_cut_frames_the_same_events() {
        let stream: &[u8] =
            b"data: {\"a\":1}\n\n: keep-alive\n\ndata: one\ndata: two\r\n\r\nevent: x\ndata:no-space\n\ndata: caf\xc3\xa9\n\ndata: [DONE]\n\n";
        let whole = SseSplitter::default().push(stream);
        let data: Vec<&str> = whole.iter().map(SseEvent::data).collect();
        assert_eq!(data, ["{\"a\":1}", "", "one\ntwo", "no-space", "café", "[DONE]"]);
        for cut in 1..stream.len() {
            for step in [1, 2, 3, 7] {
                let mut s = SseSplitter::default();
                let mut got = s.push(&stream[..cut]);
                for part in stream[cut..].chunks(step) {
                    got.extend(s.push(part));
                }
                assert_eq!(got, whole, "cut at {cut}, then steps of {step}");
                assert_eq!(s.pending(), 0);
            }
        }
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let ev = SseSplitter::default().push(b"data: a\xffb\n\n");
        assert_eq!(ev[0].data(), "a\u{fffd}b");
    }
}
