//! A plain reverse proxy on Cloudflare's Pingora, relaying everything to one upstream with
//! nothing else: the floor of a data plane built on Pingora, measured side by side with
//! tollgate's (hyper) and the bare axum+reqwest relay (`examples/bare_proxy.rs`) to choose the
//! HTTP layer on measurements.
//!
//! Usage: pingora-floor LISTEN_ADDR UPSTREAM_URL [THREADS]

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

struct Floor {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> pingora_core::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream.as_str(), false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream) = match (args.get(1), args.get(2)) {
        (Some(l), Some(u)) => (l.clone(), u.trim_start_matches("http://").trim_end_matches('/').to_string()),
        _ => {
            eprintln!("usage: pingora-floor LISTEN_ADDR UPSTREAM_URL [THREADS]");
            std::process::exit(2);
        }
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let conf = ServerConf { threads, ..ServerConf::default() };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("pingora floor listening on http://{listen}");
    server.run_forever();
}
