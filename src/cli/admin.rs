//! `tollgate admin`: the admin API from the command line. Each subcommand is one documented
//! operation (see /openapi.json); the answer is printed as JSON. The admin key comes from
//! `$TOLLGATE_ADMIN_KEY` (or `--admin-key-env`), never from the command line, so it does not
//! land in shell history or the process list.

use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Environment variable holding the admin key.
    #[arg(long, default_value = "TOLLGATE_ADMIN_KEY", global = true)]
    pub admin_key_env: String,
    #[command(subcommand)]
    pub op: AdminOp,
}

#[derive(Debug, Subcommand)]
pub enum AdminOp {
    /// Tenants: tier, models, budget, spent and held.
    Tenants,
    /// Tiers: prices, value, SLOs, deferral.
    Tiers,
    /// The price board and each pool's live price and load.
    Prices,
    /// Usage by tenant and model since a time (Unix milliseconds; default: all).
    Usage {
        #[arg(long, default_value_t = 0)]
        since_ms: i64,
    },
    /// The most recent ledger rows.
    Ledger {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// The most recent admission decisions.
    Decisions {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// API keys (never their secrets), optionally of one tenant.
    Keys {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Create a key for a tenant; the answer holds the secret, shown once.
    CreateKey {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a key by its id.
    RevokeKey { id: String },
}

pub fn run(a: AdminArgs) -> anyhow::Result<()> {
    let key = std::env::var(&a.admin_key_env).with_context(|| format!("${} is not set", a.admin_key_env))?;
    let base = a.url.trim_end_matches('/');
    let (method, path, body) = match &a.op {
        AdminOp::Tenants => ("GET", "/v1/tollgate/tenants".to_string(), None),
        AdminOp::Tiers => ("GET", "/v1/tollgate/tiers".to_string(), None),
        AdminOp::Prices => ("GET", "/v1/tollgate/prices".to_string(), None),
        AdminOp::Usage { since_ms } => ("GET", format!("/v1/tollgate/usage?since_ms={since_ms}"), None),
        AdminOp::Ledger { limit } => ("GET", format!("/v1/tollgate/ledger?limit={limit}"), None),
        AdminOp::Decisions { limit } => ("GET", format!("/v1/tollgate/decisions?limit={limit}"), None),
        AdminOp::Keys { tenant } => {
            let q = tenant.as_deref().map(|t| format!("?tenant={}", urlencode(t))).unwrap_or_default();
            ("GET", format!("/v1/tollgate/keys{q}"), None)
        }
        AdminOp::CreateKey { tenant, label } => {
            ("POST", "/v1/tollgate/keys".to_string(), Some(serde_json::json!({"tenant": tenant, "label": label})))
        }
        AdminOp::RevokeKey { id } => ("DELETE", format!("/v1/tollgate/keys/{}", urlencode(id)), None),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse()?, format!("{base}{path}")).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {base}{path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let pretty = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(text);
        println!("{pretty}");
        if !status.is_success() {
            bail!("{method} {path}: {status}");
        }
        Ok(())
    })
}

/// Percent-encodes a path or query component.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
