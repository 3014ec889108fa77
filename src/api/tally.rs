//! Metering what an upstream answers: [`Tally`] reads each SSE event of a stream as it passes
//! (usage when the upstream reports it, else the text to count), decides what to forward, and
//! knows when the stream is complete; [`whole_tokens`] does the same for a whole answer.
//!
//! Per event the work is one pass over its JSON, allocating only for a usage object: the text is appended where
//! it lies (a visitor, not a parsed document), everything else is skipped, and events are
//! forwarded as the slices of the upstream's chunk they arrived in (the chunk itself when every
//! event in it goes on).

use super::classify::PromptInput;
use super::sse::{SseEvent, SseSplitter};
use super::tokens;
use crate::metering::Tokens;
use bytes::Bytes;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Most text kept for estimating output tokens when an upstream reports no usage.
const MAX_ESTIMATE_TEXT: usize = 4 * 1024 * 1024;

/// The usage key, looked for in each event of a trusted upstream (the searcher built once).
static USAGE_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));

/// Most bytes of events kept to store a stream's answer in the cache; a longer one is not stored.
const MAX_CAPTURE_BYTES: usize = 1024 * 1024;

/// What one JSON document (a whole response or one chunk) says for metering.
#[derive(Debug, Default, PartialEq)]
struct Read {
    usage: Option<Tokens>,
    /// Whether it has a `choices` array that is empty (OpenAI's usage-only last chunk).
    no_choices: bool,
}

/// Where the output text of a document goes.
struct TextSink<'a> {
    text: &'a mut String,
    /// Whether to keep the text (false past [`MAX_ESTIMATE_TEXT`]: only counted as seen).
    keep: bool,
    /// Bytes of text the document had.
    seen: usize,
}

/// Reads usage and appends the output text of `json` (choices' `message.content`,
/// `delta.content` and `text` when they are strings); `None` when it is not JSON at all.
fn read(json: &[u8], sink: &mut TextSink) -> Option<Read> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let r = Lenient(Doc(sink)).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(r)
}

/// Tokens of a whole (non-streamed) response: its usage, else estimated from its text and the
/// prompt; `None` when the body is not JSON.
pub fn whole_tokens(body: &[u8], prompt: &PromptInput) -> Option<Tokens> {
    let mut text = String::new();
    let read = read(body, &mut TextSink { text: &mut text, keep: true, seen: 0 })?;
    Some(counted(read.usage, prompt, &text))
}

/// The upstream's usage when it reported one, else the prompt and `text` counted.
fn counted(usage: Option<Tokens>, prompt: &PromptInput, text: &str) -> Tokens {
    usage.unwrap_or_else(|| Tokens::new(prompt.count(), tokens::count_text(text) as i64, true))
}

/// An OpenAI usage object's tokens (`None` without `prompt_tokens`), with the prompt's cache
/// reads (`prompt_tokens_details.cached_tokens`) and writes (`cache_write_tokens`, as the
/// translation from Anthropic's usage reports them).
fn usage_tokens(u: &Value) -> Option<Tokens> {
    let input = u.get("prompt_tokens").and_then(Value::as_i64)?;
    let detail = |k: &str| u.get("prompt_tokens_details").and_then(|d| d.get(k)).and_then(Value::as_i64);
    Some(Tokens {
        cached_input: detail("cached_tokens").unwrap_or(0),
        cache_write: detail("cache_write_tokens").unwrap_or(0),
        ..Tokens::new(input, u.get("completion_tokens").and_then(Value::as_i64).unwrap_or(0), false)
    })
}

/// The metering state of a stream, fed the upstream's chunks as they come.
#[derive(Debug, Default)]
pub struct Tally {
    splitter: SseSplitter,
    reading: Reading,
}

/// Everything of a [`Tally`] but its framing (so that events can be read while it frames).
#[derive(Debug, Default)]
struct Reading {
    /// Whether the client asked for the usage chunk (tollgate always asks the upstream for it).
    client_wants_usage: bool,
    usage: Option<Tokens>,
    text: String,
    content_events: i64,
    /// The upstream is known to report usage: an event that does not mention it is checked
    /// (a JSON object) and counted, not read; its text is not kept.
    trusting: bool,
    saw_done: bool,
    /// An event whose data is not JSON arrived: the stream is broken (nothing after it is read).
    malformed: bool,
    /// The events' payloads, kept when the answer is to be cached (`None` once past the bound).
    captured: Option<Vec<Bytes>>,
    captured_bytes: usize,
    /// The events of the current chunk that go on, and whether any did not.
    forward: Vec<Bytes>,
    dropped: bool,
}

impl Reading {
    /// Keeps an event's payload for the cache, while the answer stays within its bound.
    fn capture(&mut self, data: &Bytes) {
        if let Some(kept) = self.captured.as_mut() {
            self.captured_bytes += data.len();
            if self.captured_bytes > MAX_CAPTURE_BYTES {
                self.captured = None;
            } else {
                kept.push(data.clone());
            }
        }
    }

    fn event(&mut self, ev: SseEvent) {
        if self.malformed {
            self.dropped = true;
            return;
        }
        let data = ev.data_bytes();
        if data.is_empty() {
            // A comment or keep-alive: no payload to read.
            return self.forward.push(ev.raw);
        }
        if &data[..] == b"[DONE]" {
            self.saw_done = true;
            return self.forward.push(ev.raw);
        }
        self.capture(data);
        if self.trusting && USAGE_KEY.find(data).is_none() {
            // Not the usage event (a `"usage"` inside text is escaped, so it cannot match):
            // checked for the shape of a JSON object, forwarded as it is, and counted as about a
            // token for the running figure.
            let json = data.trim_ascii();
            if json.first() != Some(&b'{') || json.last() != Some(&b'}') {
                self.malformed = true;
                self.dropped = true;
                return;
            }
            self.content_events += 1;
            return self.forward.push(ev.raw);
        }
        let keep = self.text.len() < MAX_ESTIMATE_TEXT;
        let mut sink = TextSink { text: &mut self.text, keep, seen: 0 };
        let Some(r) = read(data, &mut sink) else {
            self.malformed = true;
            self.dropped = true;
            return;
        };
        if sink.seen > 0 {
            self.content_events += 1;
        }
        let mut forward = true;
        if let Some(u) = r.usage {
            self.usage = Some(u);
            forward = self.client_wants_usage || !r.no_choices;
        }
        if forward {
            self.forward.push(ev.raw);
        } else {
            self.dropped = true;
        }
    }
}

impl Tally {
    pub fn new(client_wants_usage: bool) -> Self {
        Self { reading: Reading { client_wants_usage, ..Default::default() }, ..Default::default() }
    }

    /// Takes an upstream chunk; returns the bytes to forward (whole events only; the usage-only
    /// chunk is dropped unless the client asked for it). An event whose data is not JSON is not
    /// forwarded and ends the reading ([`Tally::malformed`]).
    pub fn process(&mut self, chunk: Bytes) -> Bytes {
        if self.reading.malformed {
            return Bytes::new();
        }
        let exact = self.splitter.pending() == 0;
        let r = &mut self.reading;
        r.dropped = false;
        self.splitter.push_bytes(chunk.clone(), |ev| r.event(ev));
        let mut forward = std::mem::take(&mut r.forward);
        let out = if exact && !r.dropped && self.splitter.pending() == 0 {
            // Every event of the chunk goes on, and nothing else: the chunk itself.
            chunk
        } else if forward.len() == 1 {
            forward[0].clone()
        } else {
            forward.concat().into()
        };
        forward.clear();
        self.reading.forward = forward;
        out
    }

    /// Keeps the events' payloads from now on, to assemble the answer for the cache.
    pub fn capture(&mut self) {
        self.reading.captured = Some(Vec::new());
    }

    /// The kept payloads, if every one was kept.
    pub fn captured(&self) -> Option<impl Iterator<Item = &str>> {
        let kept = self.reading.captured.as_ref()?;
        Some(kept.iter().map(|b| std::str::from_utf8(b).unwrap_or_default()))
    }

    /// Whether an event that is not JSON arrived.
    pub fn malformed(&self) -> bool {
        self.reading.malformed
    }

    /// Whether `[DONE]` has passed: the response is complete.
    pub fn saw_done(&self) -> bool {
        self.reading.saw_done
    }

    /// Bytes of an unfinished event.
    pub fn pending(&self) -> usize {
        self.splitter.pending()
    }

    /// Trusts the upstream to report usage (it did on its last stream): events that do not
    /// mention usage are not read for text. Should it end without usage after all, its output
    /// is estimated from the events' count (about a token each) instead of their text.
    pub fn trust_usage(&mut self) {
        self.reading.trusting = true;
    }

    /// Whether the upstream reported usage.
    pub fn reported_usage(&self) -> bool {
        self.reading.usage.is_some()
    }

    /// A cheap running figure (an event is about a token) while the stream goes on.
    pub fn running(&self) -> Tokens {
        self.reading.usage.unwrap_or(Tokens::new(0, self.reading.content_events, true))
    }

    /// The final figure: the upstream's usage, else counted from the prompt and the text (the
    /// events, when the upstream was trusted to report usage and did not).
    pub fn tokens(&self, prompt: &PromptInput) -> Tokens {
        match self.reading.usage {
            None if self.reading.trusting => Tokens::new(prompt.count(), self.reading.content_events, true),
            usage => counted(usage, prompt, &self.reading.text),
        }
    }
}

/// A visitor that accepts a JSON value of any shape: [`Shape`] says what to do with the
/// shapes it reads, and every other one is skipped.
struct Lenient<S>(S);

trait Shape<'de>: Sized {
    type Out: Default;
    fn str(self, _s: &str) -> Self::Out {
        Self::Out::default()
    }
    fn seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::Out::default())
    }
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Out, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::Out::default())
    }
}

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Lenient<S> {
    type Value = S::Out;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<S::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for Lenient<S> {
    type Value = S::Out;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<S::Out, E> {
        Ok(S::Out::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<S::Out, E> {
        Ok(S::Out::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<S::Out, E> {
        Ok(S::Out::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<S::Out, E> {
        Ok(S::Out::default())
    }
    fn visit_unit<E>(self) -> Result<S::Out, E> {
        Ok(S::Out::default())
    }
    fn visit_str<E>(self, s: &str) -> Result<S::Out, E> {
        Ok(self.0.str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<S::Out, A::Error> {
        self.0.seq(a)
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<S::Out, A::Error> {
        self.0.map(a)
    }
}

/// Which of `names` a key is.
struct Key(&'static [&'static str]);
impl Shape<'_> for Key {
    type Out = Option<usize>;
    fn str(self, s: &str) -> Option<usize> {
        self.0.iter().position(|n| *n == s)
    }
}

/// A document: its `choices` and `usage`.
struct Doc<'s, 'a>(&'s mut TextSink<'a>);
impl<'de> Shape<'de> for Doc<'_, '_> {
    type Out = Read;
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<Read, A::Error> {
        let mut read = Read::default();
        while let Some(key) = a.next_key_seed(Lenient(Key(&["choices", "usage"])))? {
            match key {
                Some(0) => read.no_choices = a.next_value_seed(Lenient(Choices(&mut *self.0)))? == Some(0),
                Some(1) => {
                    let u: Value = a.next_value()?;
                    read.usage = usage_tokens(&u);
                }
                _ => drop(a.next_value::<IgnoredAny>()?),
            }
        }
        Ok(read)
    }
}

/// `choices`: how many there are (`None` when it is not an array).
struct Choices<'s, 'a>(&'s mut TextSink<'a>);
impl<'de> Shape<'de> for Choices<'_, '_> {
    type Out = Option<usize>;
    fn seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Option<usize>, A::Error> {
        let mut n = 0;
        while a.next_element_seed(Lenient(Choice(&mut *self.0)))?.is_some() {
            n += 1;
        }
        Ok(Some(n))
    }
}

/// One choice: `message.content`, `delta.content` or `text`.
struct Choice<'s, 'a>(&'s mut TextSink<'a>);
impl<'de> Shape<'de> for Choice<'_, '_> {
    type Out = ();
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while let Some(key) = a.next_key_seed(Lenient(Key(&["message", "delta", "text"])))? {
            match key {
                Some(0 | 1) => a.next_value_seed(Lenient(Message(&mut *self.0)))?,
                Some(_) => a.next_value_seed(Lenient(Text(&mut *self.0)))?,
                None => drop(a.next_value::<IgnoredAny>()?),
            }
        }
        Ok(())
    }
}

/// A message or delta: its `content`.
struct Message<'s, 'a>(&'s mut TextSink<'a>);
impl<'de> Shape<'de> for Message<'_, '_> {
    type Out = ();
    fn map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        while let Some(key) = a.next_key_seed(Lenient(Key(&["content"])))? {
            match key {
                Some(_) => a.next_value_seed(Lenient(Text(&mut *self.0)))?,
                None => drop(a.next_value::<IgnoredAny>()?),
            }
        }
        Ok(())
    }
}

/// Output text: appended when it is a string.
struct Text<'s, 'a>(&'s mut TextSink<'a>);
impl Shape<'_> for Text<'_, '_> {
    type Out = ();
    fn str(self, s: &str) {
        self.0.seen += s.len();
        if self.0.keep {
            self.0.text.push_str(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::openai::Prompt;

    fn prompt() -> PromptInput {
        PromptInput::Completion(Prompt::Text("hello there".into()))
    }

    fn feed(t: &mut Tally, s: &'static [u8]) -> Bytes {
        t.process(Bytes::from_static(s))
    }

    #[test]
    fn reads_usage_and_drops_the_usage_chunk_the_client_did_not_ask_for() {
        let mut t = Tally::new(false);
        let a =
            feed(&mut t, b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":");
        assert_eq!(&a[..], b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n");
        let b = feed(&mut t, b"{\"content\":\"lo \\\"x\\\"\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(&b[..], b"data: {\"choices\":[{\"delta\":{\"content\":\"lo \\\"x\\\"\"}}]}\n\ndata: [DONE]\n\n");
        assert!(t.saw_done());
        assert_eq!(t.reading.text, "Hello \"x\"");
        assert_eq!(t.running(), Tokens::new(7, 2, false));
        let mut keep = Tally::new(true);
        let c = feed(&mut keep, b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n");
        assert!(!c.is_empty());
    }

    #[test]
    fn a_chunk_of_whole_events_that_all_go_on_is_forwarded_as_it_came() {
        let mut t = Tally::new(false);
        let chunk =
            Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n: ping\n\n");
        let out = t.process(chunk.clone());
        assert_eq!(out.as_ptr(), chunk.as_ptr(), "the chunk itself, not a copy");
        assert_eq!(out.len(), chunk.len());
        assert_eq!(t.running(), Tokens::new(0, 1, true));
    }

    #[test]
    fn estimates_without_usage_tolerates_unusual_shapes_and_stops_at_a_malformed_event() {
        let mut t = Tally::new(false);
        // Content as an array of parts is not text; the document is still read.
        feed(&mut t, b"data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\"}]}}]}\n\n");
        let out = feed(
            &mut t,
            b"data: {\"choices\":[{\"text\":\"hi there\"}]}\n\n: keep-alive\n\ndata: not json\n\ndata: {}\n\n",
        );
        // The good event and the comment pass; the broken one and anything after it do not.
        assert_eq!(&out[..], b"data: {\"choices\":[{\"text\":\"hi there\"}]}\n\n: keep-alive\n\n");
        assert!(t.malformed());
        assert!(feed(&mut t, b"data: {}\n\n").is_empty());
        assert_eq!(t.reading.content_events, 1);
        let tok = t.tokens(&prompt());
        assert!(tok.estimated);
        assert_eq!((tok.input, tok.output), (2, 2));
        // Trailing bytes after the document make it malformed too.
        let mut u = Tally::new(false);
        assert!(feed(&mut u, b"data: {\"choices\":[]} x\n\n").is_empty());
        assert!(u.malformed());
        // A whole response with usage, and one with odd usage (no prompt_tokens) estimated instead.
        let whole = br#"{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
        assert_eq!(whole_tokens(whole, &prompt()).unwrap(), Tokens::new(5, 1, false));
        let odd = br#"{"choices":[{"message":{"content":"ok then"}}],"usage":{"completion_tokens":1}}"#;
        assert_eq!(whole_tokens(odd, &prompt()).unwrap(), Tokens::new(2, 2, true));
        // Any JSON is read (nothing to meter in it); not JSON is not.
        assert!(whole_tokens(b"[1, \"a\", null]", &prompt()).is_some_and(|t| t.output == 0));
        assert!(whole_tokens(b"{\"choices\": \"x\", \"usage\": 3}", &prompt()).is_some());
        assert!(whole_tokens(b"{\"choices\": [", &prompt()).is_none());
    }

    #[test]
    fn a_trusted_upstream_is_read_only_for_its_usage_and_estimated_by_events_without_it() {
        let stream: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"usage\\\" word\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"!\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        let mut read = Tally::new(false);
        let mut trusted = Tally::new(false);
        trusted.trust_usage();
        // The same bytes go on, and the same usage is read; no text is kept.
        assert_eq!(trusted.process(Bytes::from_static(stream)), read.process(Bytes::from_static(stream)));
        assert_eq!(trusted.tokens(&prompt()), Tokens::new(7, 2, false));
        assert!(trusted.reported_usage() && trusted.saw_done());
        assert_eq!((trusted.reading.text.as_str(), trusted.reading.content_events), ("", 2));
        // Without usage after all: the events are counted as tokens.
        let mut t = Tally::new(false);
        t.trust_usage();
        feed(&mut t, b"data: {\"choices\":[{\"delta\":{\"content\":\"a b c\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"d\"}}]}\n\ndata: [DONE]\n\n");
        let tok = t.tokens(&prompt());
        assert!(tok.estimated && !t.reported_usage());
        assert_eq!((tok.input, tok.output), (2, 2));
        // Whitespace around the object is still JSON; what is not a JSON object ends the reading.
        let mut w = Tally::new(false);
        w.trust_usage();
        feed(&mut w, b"data: {\"choices\":[]} \n\n");
        assert!(!w.malformed());
        let mut m = Tally::new(false);
        m.trust_usage();
        assert!(feed(&mut m, b"data: <html>bad gateway</html>\n\n").is_empty());
        assert!(m.malformed());
    }
}
