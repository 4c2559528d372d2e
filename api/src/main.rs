//! The `api` binary: parse the settings, start logging, run the chosen command.

use anyhow::Context as _;
use api::{
    config::{Cli, Command},
    db, graphql, seed,
    startup::{Application, shutdown_signal},
    telemetry,
};
use clap::Parser as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    telemetry::init_tracing(cli.config.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&config).await?;
            println!("Quill listening on http://{}/graphql", app.local_addr());
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::ExportSchema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Seed(args) => {
            let db = db::connect_and_migrate(&config).await?;
            let report = seed::run(&db, &args).await.context("seeding")?;
            println!("seeded: {} users and {} posts added", report.users, report.posts);
            Ok(())
        }
    }
}
