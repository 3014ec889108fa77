//! Opt-in distillation data: for tenants whose tier sets `keep_for_distillation`, each answered
//! chat completion is kept as a prompt/response pair (`keep`), in files of that tenant's own under
//! the data directory, readable by the gateway's user alone and pruned past the tier's retention;
//! `tollgate export` turns one tenant's pairs into a deduplicated fine-tuning file with fields
//! masked or records dropped by regex rules (`export`). Nothing is kept for any other tier.

pub mod export;
pub mod keep;

use std::path::{Path, PathBuf};

/// The folder of one tenant's kept pairs: `<data_dir>/distill/<tenant>` (the tenant's name when it
/// is a plain name, else its hex, so no name can reach outside the folder).
pub fn tenant_dir(data_dir: &Path, tenant: &str) -> PathBuf {
    let plain = !tenant.is_empty()
        && !tenant.starts_with('.')
        && tenant.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let name = if plain { tenant.to_string() } else { format!("x{}", hex::encode(tenant)) };
    data_dir.join("distill").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_name_never_leaves_the_folder() {
        let d = Path::new("/data");
        assert_eq!(tenant_dir(d, "acme"), Path::new("/data/distill/acme"));
        for bad in ["../etc", "a/b", "..", ".hidden", ""] {
            let p = tenant_dir(d, bad);
            assert_eq!(p.parent(), Some(Path::new("/data/distill")), "{bad}");
            assert!(p.file_name().unwrap().to_str().unwrap().starts_with('x'), "{bad}");
        }
    }
}
