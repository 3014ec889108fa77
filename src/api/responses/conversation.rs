//! Conversations across stored responses, pure: a request's `input` as items, a
//! `previous_response_id` expanded into the earlier turns, and the items listed back.
//!
//! A stored response keeps the whole conversation's input up to it (its predecessor's input and
//! output, then its own input), so expanding one never walks a chain. As OpenAI's API does, the
//! earlier response's `instructions` are not carried over.

use serde_json::{json, Value};

/// A request's `input` as a list of items (a string is one user message).
pub fn input_items(input: &Value) -> Vec<Value> {
    match input {
        Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    }
}

/// The conversation a request continues: the earlier response's input and output items, then the
/// request's own input. `previous_input` is the stored input (a JSON array), `previous` the stored
/// response.
pub fn continued(previous_input: &Value, previous: &Value, input: &Value) -> Vec<Value> {
    let mut items = previous_input.as_array().cloned().unwrap_or_default();
    items.extend(previous.get("output").and_then(Value::as_array).into_iter().flatten().cloned());
    items.extend(input_items(input));
    items
}

/// `GET /v1/responses/{id}/input_items`: the items with ids (given ones kept), in `order`
/// (`asc`, or `desc` as OpenAI's default), at most `limit`.
pub fn listing(response_id: &str, items: &Value, descending: bool, limit: usize) -> Value {
    let mut data: Vec<Value> = items
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, item)| {
            let mut item = item.clone();
            if item.get("id").is_none_or(|id| !id.is_string()) {
                item["id"] = json!(format!("{}_in{i}", response_id.replacen("resp_", "item_", 1)));
            }
            if item.get("type").is_none() {
                item["type"] = json!("message");
            }
            item
        })
        .collect();
    if descending {
        data.reverse();
    }
    let has_more = data.len() > limit;
    data.truncate(limit);
    let first = data.first().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_carries_the_earlier_turns_in_order() {
        let first_input = Value::Array(input_items(&json!("Weather in Paris?")));
        let first =
            json!({"output": [{"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"}]});
        let next = continued(
            &first_input,
            &first,
            &json!([{"type": "function_call_output", "call_id": "call_1", "output": "18C"}]),
        );
        let kinds: Vec<&str> = next.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message", "function_call", "function_call_output"]);
        assert_eq!(next[0]["content"], "Weather in Paris?");
    }

    #[test]
    fn items_are_listed_with_ids_newest_first_by_default() {
        let items = json!([{"role": "user", "content": "a"}, {"type": "message", "id": "msg_x", "role": "assistant", "content": "b"}]);
        let l = listing("resp_7", &items, true, 20);
        assert_eq!(l["data"][0]["id"], "msg_x");
        assert_eq!(l["data"][1]["id"], "item_7_in0");
        assert_eq!(l["data"][1]["type"], "message");
        assert_eq!((l["first_id"].as_str(), l["has_more"].as_bool()), (Some("msg_x"), Some(false)));
        let l = listing("resp_7", &items, false, 1);
        assert_eq!(l["data"].as_array().unwrap().len(), 1);
        assert_eq!(l["has_more"], true);
    }
}
