//! Token counting with a real tokenizer (tiktoken's cl100k_base), shared by the emulator (to
//! count prompts) and the gateway (to estimate usage when an upstream reports none).

use crate::api::openai::{ChatMessage, EmbeddingInput, Prompt};
use tiktoken_rs::{cl100k_base_singleton, CoreBPE};

pub fn bpe() -> &'static CoreBPE {
    cl100k_base_singleton()
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
        out.extend(bpe().encode_ordinary(&m.role));
        if let Some(name) = &m.name {
            out.extend(bpe().encode_ordinary(name));
        }
        out.push(IM_SEP);
        out.extend(bpe().encode_ordinary(&m.text()));
        out.push(IM_END);
    }
    out.push(IM_START);
    out.extend(bpe().encode_ordinary("assistant"));
    out.push(IM_SEP);
    out
}

/// Token ids of a completion prompt (a list of strings is read as one prompt, joined).
pub fn completion_prompt_tokens(prompt: &Prompt) -> Vec<u32> {
    match prompt {
        Prompt::Text(s) => bpe().encode_ordinary(s),
        Prompt::Texts(v) => v.iter().flat_map(|s| bpe().encode_ordinary(s)).collect(),
        Prompt::Tokens(t) => t.clone(),
    }
}

/// Token ids of each embedding input.
pub fn embedding_inputs(input: &EmbeddingInput) -> Vec<Vec<u32>> {
    match input {
        EmbeddingInput::Text(s) => vec![bpe().encode_ordinary(s)],
        EmbeddingInput::Texts(v) => v.iter().map(|s| bpe().encode_ordinary(s)).collect(),
        EmbeddingInput::Tokens(t) => vec![t.clone()],
        EmbeddingInput::TokenLists(v) => v.clone(),
    }
}

/// Number of tokens in plain text.
pub fn count_text(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
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
    }
}
