//! Token counting with a real tokenizer (OpenAI's cl100k_base), shared by the emulator (to
//! count prompts) and the gateway (to price a request at admission, and to estimate usage when
//! an upstream reports none). The encoder is GitHub's `bpe-openai`: the same token ids as
//! tiktoken, about four times faster on short prompts (measured on 20,000 Quora questions:
//! 2.8 us against 12.2 us each, identical counts), and admission counts every prompt.

use crate::api::openai::{ChatMessage, EmbeddingInput, Prompt};

pub fn bpe() -> &'static bpe_openai::Tokenizer {
    bpe_openai::cl100k_base()
}

/// ChatML markers as OpenAI's chat models number them (`<|im_start|>`, `<|im_end|>`, `<|im_sep|>`).
const IM_START: u32 = 100_264;
const IM_END: u32 = 100_265;
const IM_SEP: u32 = 100_266;

/// Token ids of a chat prompt in ChatML, with the assistant turn opened: three marker tokens a
/// message plus its role, name and text, and three to prime the reply, as OpenAI counts them.
pub fn chat_prompt_tokens(messages: &[ChatMessage]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in messages {
        out.push(IM_START);
        out.extend(bpe().encode(&m.role));
        if let Some(name) = &m.name {
            out.extend(bpe().encode(name));
        }
        out.push(IM_SEP);
        out.extend(bpe().encode(&m.text()));
        out.push(IM_END);
    }
    out.push(IM_START);
    out.extend(bpe().encode("assistant"));
    out.push(IM_SEP);
    out
}

/// Token ids of a completion prompt (a list of strings is read as one prompt, joined).
pub fn completion_prompt_tokens(prompt: &Prompt) -> Vec<u32> {
    match prompt {
        Prompt::Text(s) => bpe().encode(s),
        Prompt::Texts(v) => v.iter().flat_map(|s| bpe().encode(s)).collect(),
        Prompt::Tokens(t) => t.clone(),
    }
}

/// Token ids of each embedding input.
pub fn embedding_inputs(input: &EmbeddingInput) -> Vec<Vec<u32>> {
    match input {
        EmbeddingInput::Text(s) => vec![bpe().encode(s)],
        EmbeddingInput::Texts(v) => v.iter().map(|s| bpe().encode(s)).collect(),
        EmbeddingInput::Tokens(t) => vec![t.clone()],
        EmbeddingInput::TokenLists(v) => v.clone(),
    }
}

/// Number of tokens of a chat prompt, as [`chat_prompt_tokens`] would give, without building them.
pub fn chat_prompt_count(messages: &[ChatMessage]) -> usize {
    let t = bpe();
    let each: usize = messages
        .iter()
        .map(|m| {
            3 + t.count(m.role.as_str()) + m.name.as_deref().map_or(0, |n| t.count(n)) + t.count(m.text().as_str())
        })
        .sum();
    each + 2 + t.count("assistant")
}

/// Number of tokens of a completion prompt.
pub fn completion_prompt_count(prompt: &Prompt) -> usize {
    match prompt {
        Prompt::Text(s) => bpe().count(s.as_str()),
        Prompt::Texts(v) => v.iter().map(|s| bpe().count(s.as_str())).sum(),
        Prompt::Tokens(t) => t.len(),
    }
}

/// Number of tokens of all embedding inputs.
pub fn embedding_count(input: &EmbeddingInput) -> usize {
    match input {
        EmbeddingInput::Text(s) => bpe().count(s.as_str()),
        EmbeddingInput::Texts(v) => v.iter().map(|s| bpe().count(s.as_str())).sum(),
        EmbeddingInput::Tokens(t) => t.len(),
        EmbeddingInput::TokenLists(v) => v.iter().map(Vec::len).sum(),
    }
}

/// Number of tokens in plain text.
pub fn count_text(text: &str) -> usize {
    bpe().count(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_prompts_count_as_openai_counts_them() {
        let m = |role: &str, text: &str| ChatMessage {
            role: role.into(),
            content: Some(crate::api::openai::Content::Text(text.into())),
            name: None,
        };
        // "hi" is one token: 3 markers + role + 1 for the message, 3 to prime the reply.
        assert_eq!(chat_prompt_tokens(&[m("user", "hi")]).len(), 8);
        assert_eq!(chat_prompt_tokens(&[m("system", "hi"), m("user", "hello there")]).len(), 8 + 5 + 1);
        let msgs = [m("system", "You are terse."), m("user", "  multiple   spaces\n\tand 日本語 🚀 don't 123456789")];
        assert_eq!(chat_prompt_count(&msgs), chat_prompt_tokens(&msgs).len());
        let p = Prompt::Texts(vec!["one two".into(), " three".into()]);
        assert_eq!(completion_prompt_count(&p), completion_prompt_tokens(&p).len());
        let e = EmbeddingInput::Texts(vec!["a b c".into(), "d".into()]);
        assert_eq!(embedding_count(&e), embedding_inputs(&e).iter().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn token_ids_are_cl100k_base() {
        // "hello world" is [15339, 1917] in cl100k_base (tiktoken).
        assert_eq!(bpe().encode("hello world"), vec![15339, 1917]);
    }
}
