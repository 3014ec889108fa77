//! The gateway-side commands: serve, and key management.

use super::{KeysCommand, ServeArgs, StoreArgs};
use crate::auth;
use crate::config::Config;
use crate::metering::unix_ms;
use crate::serve::{self, embedded};
use crate::store::{SqliteStore, Store};
use anyhow::Context;
use std::path::PathBuf;

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    // The configuration comes first: it says where traces go, and logging starts with them.
    let loaded = match &a.config {
        Some(path) => {
            let mut cfg = Config::from_file(path)?;
            if let Some(l) = &a.listen {
                cfg.listen = l.clone();
                cfg.validate(&path.display().to_string())?;
            }
            Some(cfg)
        }
        None => None,
    };
    // Declared before the runtime, so dropped after it: the last spans are flushed at exit.
    let _telemetry = serve::telemetry::init(loaded.as_ref().and_then(|c| c.tracing.as_ref()))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let (cfg, admin_key, demo) = match loaded {
            Some(cfg) => {
                let admin = std::env::var(&cfg.admin_key_env).ok().filter(|k| !k.is_empty());
                if admin.is_none() {
                    tracing::warn!(var = %cfg.admin_key_env, "no admin key set: the admin API is disabled");
                }
                (cfg, admin, None)
            }
            None => {
                let listen = a.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
                let data_dir = PathBuf::from("tollgate-data");
                let cfg = embedded::start_fleet(&listen, &data_dir).await?;
                let admin = embedded::admin_key(&data_dir)?;
                let demo = embedded::demo_key(&data_dir).await?;
                (cfg, Some(admin), Some(demo))
            }
        };
        let listener =
            serve::http::bind(&cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
        let models: Vec<String> = cfg.models.iter().map(|m| m.name.clone()).collect();
        let handle = serve::spawn(cfg, admin_key.clone(), listener, Some(Box::pin(serve::shutdown_signal()))).await?;
        let base = handle.base_url();
        println!("tollgate gateway listening on {base}");
        if let Some(demo) = demo {
            let admin = admin_key.unwrap_or_default();
            let model = &models[0];
            println!(
                "\nEmbedded default: an emulated fleet serving {models:?}; data in ./tollgate-data/\n\
                 demo tenant key: {demo}\n\
                 admin key:       {admin}\n\n\
                 curl {base}/v1/chat/completions -H 'Authorization: Bearer {demo}' -H 'Content-Type: application/json' \\\n  \
                 -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}], \"max_tokens\": 32}}'\n\n\
                 python3 -c \"from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='{demo}'); \
                 print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}], max_tokens=32).choices[0].message.content)\"\n\n\
                 curl {base}/v1/tollgate/usage -H 'Authorization: Bearer {admin}'\n"
            );
        }
        handle.wait().await
    })
}

async fn open_store(s: &StoreArgs) -> anyhow::Result<(std::sync::Arc<dyn Store>, Option<Config>)> {
    match &s.config {
        Some(path) => {
            let cfg = Config::from_file(path)?;
            Ok((crate::store::open(cfg.ledger.as_deref(), &cfg.data_dir).await?, Some(cfg)))
        }
        None => Ok((std::sync::Arc::new(SqliteStore::open(&s.data_dir).await?), None)),
    }
}

pub fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match cmd {
            KeysCommand::Create { tenant, label, store } => {
                let (db, cfg) = open_store(&store).await?;
                let known = match &cfg {
                    Some(c) => c.tenant(&tenant).is_some(),
                    None => tenant == "demo",
                };
                anyhow::ensure!(known, "unknown tenant `{tenant}` (tenants are defined in the configuration)");
                let k = auth::generate(&tenant, &label);
                db.insert_key(&k.record).await?;
                eprintln!("created key {} for tenant {tenant}; it is shown once, store it now:", k.record.id);
                println!("{}", k.key);
            }
            KeysCommand::List { tenant, store } => {
                let (db, _) = open_store(&store).await?;
                println!("{:<14} {:<16} {:<8} label", "id", "tenant", "state");
                for k in db.list_keys(tenant.as_deref()).await? {
                    let state = if k.revoked_at_ms.is_some() { "revoked" } else { "active" };
                    println!("{:<14} {:<16} {:<8} {}", k.id, k.tenant, state, k.label);
                }
            }
            KeysCommand::Revoke { id, store } => {
                let (db, _) = open_store(&store).await?;
                anyhow::ensure!(db.revoke_key(&id, unix_ms()).await?, "no active key `{id}`");
                println!("revoked {id}");
            }
        }
        Ok(())
    })
}
