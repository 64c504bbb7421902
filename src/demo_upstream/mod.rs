//! `vaultplus demo-upstream`: a local stand-in for the upstream Access API
//! (see ../shared/reference/upstream.md), with deterministic vault lists of
//! real media and injectable faults, for tests, benchmarks and the README's
//! quick start.

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Address to listen on (`:0` picks a free port).
    #[arg(long, env = "VAULTPLUS_DEMO_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("demo-upstream is not built yet")
}
