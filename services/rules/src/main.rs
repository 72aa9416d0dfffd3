//! `kelvin-rules`: the rules service alone (PostgreSQL and Redis in production).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kelvin_server::run_service(kelvin_rules::SERVICE_NAME, &[kelvin_rules::mount]).await
}
