//! A batch's input file, read and checked line by line (pure): each non-blank line is a JSON
//! object `{"custom_id", "method": "POST", "url", "body"}` with a unique `custom_id`, the batch's
//! endpoint as `url`, and a body naming a `model`. Every problem is reported with its line
//! number, as OpenAI's batch `errors` are.

use serde_json::Value;
use std::collections::HashSet;

/// One request of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// From 1, counting blank lines.
    pub line: i64,
    pub custom_id: String,
    pub model: String,
    /// The request body, as sent upstream (`stream` off).
    pub body: Value,
}

/// A problem with one line (or, line 0, with the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: i64,
    pub code: &'static str,
    pub message: String,
}

/// Reads `bytes` as requests to `endpoint`: every line, or every problem found.
pub fn parse(bytes: &[u8], endpoint: &str, max_lines: usize) -> Result<Vec<Line>, Vec<LineError>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Err(vec![file_error("invalid_file", format!("The file is not UTF-8: {e}."))]),
    };
    let (mut lines, mut errors, mut seen) = (Vec::new(), Vec::new(), HashSet::new());
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let n = i as i64 + 1;
        match line(n, raw, endpoint) {
            Ok(l) if !seen.insert(l.custom_id.clone()) => errors.push(LineError {
                line: n,
                code: "duplicate_custom_id",
                message: format!("The custom_id {:?} is used by an earlier line.", l.custom_id),
            }),
            Ok(l) => lines.push(l),
            Err(e) => errors.push(e),
        }
    }
    if lines.is_empty() && errors.is_empty() {
        errors.push(file_error("empty_file", "The file has no requests.".into()));
    }
    if lines.len() + errors.len() > max_lines {
        errors.push(file_error("too_many_requests", format!("A batch may hold at most {max_lines} requests.")));
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

fn file_error(code: &'static str, message: String) -> LineError {
    LineError { line: 0, code, message }
}

fn line(n: i64, raw: &str, endpoint: &str) -> Result<Line, LineError> {
    let err = |code: &'static str, message: String| LineError { line: n, code, message };
    let v: Value = serde_json::from_str(raw).map_err(|e| err("invalid_json", format!("Line {n} is not JSON: {e}.")))?;
    let Value::Object(mut o) = v else {
        return Err(err("invalid_request", format!("Line {n} is not a JSON object.")));
    };
    let custom_id = match o.get("custom_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 512 => s.clone(),
        _ => {
            return Err(err("missing_custom_id", format!("Line {n} needs a custom_id (a string of 1-512 characters).")))
        }
    };
    if o.get("method").and_then(Value::as_str) != Some("POST") {
        return Err(err("invalid_method", format!("Line {n}: method must be \"POST\".")));
    }
    if o.get("url").and_then(Value::as_str) != Some(endpoint) {
        return Err(err("mismatched_url", format!("Line {n}: url must be the batch's endpoint, {endpoint}.")));
    }
    let Some(Value::Object(mut body)) = o.remove("body") else {
        return Err(err("invalid_body", format!("Line {n}: body must be a JSON object.")));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(err("missing_model", format!("Line {n}: body.model must name a model."))),
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(err("invalid_body", format!("Line {n}: a batch request cannot stream.")));
    }
    if endpoint == "/v1/responses" && body.get("previous_response_id").is_some_and(|p| !p.is_null()) {
        let m = format!("Line {n}: a batch line cannot continue a stored response (previous_response_id).");
        return Err(err("invalid_body", m));
    }
    body.remove("stream");
    body.remove("stream_options");
    Ok(Line { line: n, custom_id, model, body: Value::Object(body) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "/v1/chat/completions";

    fn req(id: &str) -> String {
        format!(
            r#"{{"custom_id": "{id}", "method": "POST", "url": "{EP}", "body": {{"model": "m", "messages": [{{"role": "user", "content": "hi"}}]}}}}"#
        )
    }

    #[test]
    fn good_lines_are_read_in_order_and_blank_lines_skipped() {
        let text = format!("{}\n\n{}\n", req("a"), req("b"));
        let lines = parse(text.as_bytes(), EP, 10).unwrap();
        assert_eq!(lines.iter().map(|l| (l.line, l.custom_id.as_str())).collect::<Vec<_>>(), [(1, "a"), (3, "b")]);
        assert_eq!(lines[0].model, "m");
        assert!(lines[0].body.get("custom_id").is_none() && lines[0].body["messages"].is_array());
    }

    #[test]
    fn a_responses_line_may_not_continue_a_stored_response() {
        let line = |extra: &str| {
            format!(
                r#"{{"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": {{"model": "m", "input": "hi"{extra}}}}}"#
            )
        };
        assert!(parse(line("").as_bytes(), "/v1/responses", 10).is_ok());
        let errs = parse(line(r#", "previous_response_id": "resp_1""#).as_bytes(), "/v1/responses", 10).unwrap_err();
        assert_eq!((errs[0].line, errs[0].code), (1, "invalid_body"));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = [
            req("a"),
            "not json".into(),
            req("a"),
            req("b").replace("POST", "GET"),
            req("c").replace(EP, "/v1/embeddings"),
            r#"{"custom_id": "d", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}}"#.into(),
            req("e").replace("\"model\": \"m\"", "\"model\": \"m\", \"stream\": true"),
            r#"{"method": "POST"}"#.into(),
        ]
        .join("\n");
        let errs = parse(text.as_bytes(), EP, 100).unwrap_err();
        let got: Vec<(i64, &str)> = errs.iter().map(|e| (e.line, e.code)).collect();
        assert_eq!(
            got,
            [
                (2, "invalid_json"),
                (3, "duplicate_custom_id"),
                (4, "invalid_method"),
                (5, "mismatched_url"),
                (6, "missing_model"),
                (7, "invalid_body"),
                (8, "missing_custom_id")
            ]
        );
    }

    #[test]
    fn empty_oversized_and_non_utf8_files_are_refused() {
        assert_eq!(parse(b"\n\n", EP, 10).unwrap_err()[0].code, "empty_file");
        let three = [req("a"), req("b"), req("c")].join("\n");
        assert_eq!(parse(three.as_bytes(), EP, 2).unwrap_err()[0].code, "too_many_requests");
        assert_eq!(parse(&[0xff, 0xfe], EP, 2).unwrap_err()[0].code, "invalid_file");
    }
}
