//! The in-process embeddings model through onnxruntime: the ONNX graph that
//! `scripts/export-onnx.py` writes from the model's own weights (ids and mask in, mean-pooled unit
//! vectors out), run by the onnxruntime library installed beside it, loaded at run time. Chosen
//! over candle where both are installed: on one core of the development VM, one short prompt took
//! 3.7-4.0 ms here against 10.7-11.9 ms through candle, with the same vectors (docs/routing.md).

use super::error::EmbedError;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The graph's file in the model's folder.
pub const GRAPH: &str = "model.onnx";
/// onnxruntime's shared library in the model's folder.
pub const LIBRARY: &str = "libonnxruntime.so";

fn err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Local(format!("onnxruntime: {e}"))
}

/// onnxruntime's environment, its library loaded from `path` once per process (the first path
/// loaded is kept).
fn runtime(path: &Path) -> Result<&'static Environment, EmbedError> {
    static LOADED: OnceLock<Result<Environment, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let builder = ort::init_from(path).map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_name("tollgate-embeddings").build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(err)
}

/// An ONNX sentence-embedding graph and its session (one run at a time).
pub struct OnnxModel {
    session: Mutex<Session>,
}

impl OnnxModel {
    /// Whether folder `dir` holds a graph and the library to run it.
    pub fn installed(dir: &Path) -> bool {
        dir.join(GRAPH).is_file() && dir.join(LIBRARY).is_file()
    }

    /// Loads the graph in `dir` on one thread (the embeddings have their own thread; the
    /// gateway's other work keeps the rest of the machine).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let env = runtime(&dir.join(LIBRARY))?;
        let session = Session::builder(env)
            .map_err(err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(err)?
            .with_intra_threads(1)
            .map_err(err)?
            .with_inter_threads(1)
            .map_err(err)?
            .commit_from_file(dir.join(GRAPH))
            .map_err(err)?;
        Ok(Self { session: Mutex::new(session) })
    }

    /// Unit vectors for a batch of `rows` texts of `width` tokens each: `ids` and `mask` (1 on real
    /// tokens, 0 on padding) row after row.
    pub fn forward(
        &self,
        ids: Vec<i64>,
        mask: Vec<i64>,
        rows: usize,
        width: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids = Tensor::from_array(([rows, width], ids)).map_err(err)?;
        let mask = Tensor::from_array(([rows, width], mask)).map_err(err)?;
        let mut session = self.session.lock().map_err(|_| err("a run panicked"))?;
        let out = session.run(ort::inputs!["input_ids" => ids, "attention_mask" => mask]).map_err(err)?;
        let (shape, data) = out["embedding"].try_extract_tensor::<f32>().map_err(err)?;
        let dim = shape.last().copied().unwrap_or(0).max(0) as usize;
        if dim == 0 || data.len() != rows * dim {
            return Err(err(format!("unexpected output shape {shape:?}")));
        }
        Ok(data.chunks_exact(dim).map(<[f32]>::to_vec).collect())
    }
}
