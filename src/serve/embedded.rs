//! The embedded default: `tollgate serve` with no configuration runs the gateway in front of an
//! emulated fleet in the same process (a small and a large model, from the emulator's
//! profiles), with a demo tenant and key, and data in `./tollgate-data/`.

use crate::auth;
use crate::capacity::Profile;
use crate::config::Config;
use crate::emulator::{Emulator, EmulatorConfig};
use crate::store::{SqliteStore, Store};
use anyhow::Context;
use std::path::Path;

/// The emulated fleet: (model, profile, replicas, running cost per engine-second in USD, and the
/// fallback it may be downgraded to with its quality). The running cost is zero: an owned fleet
/// runs whether or not it serves, so a token's marginal cost is its opportunity cost alone, and
/// an idle fleet serves every request on the model asked for.
struct Emulated {
    model: &'static str,
    profile: &'static str,
    replicas: usize,
    cost: f64,
    fallback: Option<(&'static str, f64)>,
}

const FLEET: &[Emulated] = &[
    Emulated { model: "llama3-8b", profile: "llama3-8b-h100-tp1", replicas: 2, cost: 0.0, fallback: None },
    Emulated {
        model: "llama2-70b",
        profile: "llama2-70b-h100-tp4",
        replicas: 1,
        cost: 0.0,
        fallback: Some(("llama3-8b", 0.7)),
    },
];

/// Starts the emulators on loopback ports and returns the gateway configuration in front of them.
pub async fn start_fleet(listen: &str, data_dir: &Path) -> anyhow::Result<Config> {
    let mut backends = String::new();
    let mut models = String::new();
    for Emulated { model, profile: profile_name, replicas, cost, fallback } in FLEET {
        let profile = Profile::builtin(profile_name)?;
        let emu = Emulator::start(EmulatorConfig {
            model_name: model.to_string(),
            profile,
            replicas: *replicas,
            seed: 0,
            time_scale: 1.0,
            faults: Default::default(),
        });
        let listener = crate::serve::http::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = emu.router();
        tokio::spawn(async move {
            if let Err(e) = crate::serve::http::serve(listener, router, std::future::pending()).await {
                tracing::error!(error = %e, "emulator stopped");
            }
        });
        backends.push_str(&format!("[[backends]]\nname = \"emulator-{model}\"\nurl = \"http://{addr}\"\n\n"));
        let fallbacks = match fallback {
            Some((m, q)) => format!("fallbacks = [{{ model = \"{m}\", quality = {q} }}]\n"),
            None => String::new(),
        };
        models.push_str(&format!(
            "[[models]]\nname = \"{model}\"\nbackends = [\"emulator-{model}\"]\n{fallbacks}\
             capacity = {{ profile = \"{profile_name}\", replicas = {replicas}, cost_per_engine_second = {cost} }}\n\n"
        ));
    }
    let text = format!(
        "listen = \"{listen}\"\ndata_dir = \"{}\"\n\n{backends}{models}\
         [[tiers]]\nname = \"standard\"\ninput_price_per_1m = 1.00\noutput_price_per_1m = 3.00\nttft_slo_ms = 2000\ne2e_slo_ms = 60000\n\n\
         [[tiers]]\nname = \"flex\"\ninput_price_per_1m = 0.50\noutput_price_per_1m = 1.50\ndeferrable = true\ndeadline_ms = 30000\n\n\
         [[tiers]]\nname = \"priority\"\ninput_price_per_1m = 2.00\noutput_price_per_1m = 6.00\nttft_slo_ms = 1000\ne2e_slo_ms = 30000\n\n\
         [service_tiers]\nflex = \"flex\"\npriority = \"priority\"\n\n\
         [[tenants]]\nname = \"demo\"\ntier = \"standard\"\nmodels = [\"*\"]\nmonthly_budget_usd = 100.0\n",
        data_dir.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
    );
    Ok(Config::from_toml(&text, "embedded default")?)
}

/// Reads a secret kept in the data directory, or makes one with `make` and keeps it (mode 0600).
fn kept_secret(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let s = make();
    std::fs::write(path, format!("{s}\n")).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(s)
}

/// The admin key: `$TOLLGATE_ADMIN_KEY`, else one kept in the data directory.
pub fn admin_key(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(k) = std::env::var("TOLLGATE_ADMIN_KEY") {
        if !k.is_empty() {
            return Ok(k);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    kept_secret(&data_dir.join("admin.key"), || auth::generate("admin", "admin").key.replacen("tg_", "tga_", 1))
}

/// The demo tenant's key, kept in the data directory so restarts reuse it (created if missing,
/// revoked or unknown to the store).
pub async fn demo_key(data_dir: &Path) -> anyhow::Result<String> {
    let store = SqliteStore::open(data_dir).await?;
    let path = data_dir.join("demo.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        let k = k.trim();
        if let Some(id) = auth::key_id(k) {
            if let Some(rec) = store.find_key(id).await? {
                if rec.revoked_at_ms.is_none() && rec.hash == auth::sha256_hex(k) {
                    return Ok(k.to_string());
                }
            }
        }
    }
    let k = auth::generate("demo", "demo key (embedded default)");
    store.insert_key(&k.record).await?;
    let _ = std::fs::remove_file(&path);
    kept_secret(&path, || k.key.clone())
}
