//! `tollgate export`: a tenant's opt-in distillation pairs as a fine-tuning file
//! ([`crate::distill::export`]).

use crate::config::Config;
use crate::distill::export::{export, Rules};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OpenAI's chat fine-tuning JSONL: one `{"messages": [...]}` per line.
    OpenaiChatJsonl,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The gateway configuration (its data directory holds the kept pairs).
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub tenant: String,
    /// First day to export, `YYYY-MM-DD` (UTC); default: every day kept.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value = "openai-chat-jsonl")]
    pub format: Format,
    /// Where to write (created or truncated, mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace e-mail addresses with `[email]`.
    #[arg(long)]
    pub mask_emails: bool,
    /// Replace secret-looking tokens (prefixed API keys, long key-like runs) with `[key]`.
    #[arg(long)]
    pub mask_keys: bool,
    /// Replace numbers with `[number]`.
    #[arg(long)]
    pub mask_numbers: bool,
    /// A regex to mask: `PATTERN` (replaced by `[masked]`) or `PATTERN=>REPLACEMENT`; repeatable.
    #[arg(long)]
    pub mask: Vec<String>,
    /// A regex: pairs with any text matching it are left out; repeatable.
    #[arg(long)]
    pub drop: Vec<String>,
}

pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let cfg = Config::from_file(&a.config)?;
    anyhow::ensure!(cfg.tenant(&a.tenant).is_some(), "unknown tenant `{}`", a.tenant);
    if let Some(s) = &a.since {
        let ok = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        anyhow::ensure!(ok, "--since `{s}`: expected YYYY-MM-DD");
    }
    let rules = Rules::new(a.mask_emails, a.mask_keys, a.mask_numbers, &a.mask, &a.drop)?;
    let Format::OpenaiChatJsonl = a.format;
    let file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&a.out)?;
    let mut out = std::io::BufWriter::new(file);
    let dir = crate::distill::tenant_dir(&cfg.data_dir, &a.tenant);
    let s = export(&dir, a.since.as_deref(), &rules, &mut out)?;
    std::io::Write::flush(&mut out)?;
    eprintln!(
        "{}: {} pairs read, {} written, {} duplicates, {} dropped by rule, {} unreadable",
        a.out.display(),
        s.read,
        s.written,
        s.duplicates,
        s.dropped,
        s.unreadable
    );
    Ok(())
}
