//! The simulator on the shipped scenario, briefly: every request meets exactly one fate, no
//! policy beats the hindsight bound, and bid prices capture more than first come, first served.

use std::collections::HashMap;
use std::path::Path;
use tollgate::sim::hindsight::{bound, Basis};
use tollgate::sim::policy::Policy;
use tollgate::sim::run::{load_requests, simulate, Load};
use tollgate::sim::scenario::Scenario;

#[test]
fn shipped_scenario_short_replay() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/azure-conv-code.toml");
    let (mut sc, base) = Scenario::from_file(&path).unwrap();
    sc.duration_s = Some(180.0);
    let reqs = load_requests(&sc, &base, &Load { overload: 2.0, ..Load::default() }).unwrap();
    assert!(reqs.len() > 500, "{}", reqs.len());
    let hs = bound(&sc, &reqs, Basis::SlaSafe).unwrap();
    assert!(hs.feasible_usd <= hs.value_usd, "{hs:?}");
    let bound = hs.value_usd;
    let mut values = HashMap::new();
    for p in [Policy::Fifo, Policy::Priority, Policy::Quota, Policy::BidPrice] {
        let r = simulate(&sc, p, &reqs, Some(bound), &mut |_| {}).unwrap();
        let accounted: usize =
            r.classes.iter().map(|c| c.admitted + c.downgraded + c.deferred + c.refused + c.dropped).sum();
        assert_eq!(accounted, reqs.len(), "{}", r.policy);
        assert!(r.value_usd <= bound * (1.0 + 1e-6), "{} {} > bound {bound}", r.policy, r.value_usd);
        values.insert(r.policy.clone(), r.value_usd);
    }
    assert!(values["bid-price"] > values["fifo"], "{values:?}");
}

#[test]
fn bad_scenarios_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.toml");
    std::fs::write(&p, "name = \"x\"\npools = []\ntiers = []\nclasses = [{ name = \"c\", tier = \"t\", pool = \"p\", trace = \"t.csv\", bogus = 1 }]\n").unwrap();
    let e = Scenario::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("classes[0]") && e.contains("bogus"), "{e}");
}
