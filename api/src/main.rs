//! The `api` binary: parse the settings, start logging, run the chosen command.

use anyhow::Context as _;
use api::{
    auth,
    config::{Cli, Command, Config, TokenArgs},
    db, graphql, repo, seed,
    startup::{Application, shutdown_signal},
    telemetry,
};
use clap::Parser as _;

#[global_allocator]
static GLOBAL: api::allocator::MiMalloc = api::allocator::MiMalloc;

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
        Command::Token(args) => {
            println!("{}", token(&config, &args).await?);
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

/// A token for the user named by id (taken as given, so an admin token for provisioning
/// may name a service rather than a user) or by email (looked up).
async fn token(config: &Config, args: &TokenArgs) -> anyhow::Result<String> {
    let signer = auth::signer(config)?;
    let id = match uuid::Uuid::parse_str(args.user.trim()) {
        Ok(id) => id,
        Err(_) => {
            let email = api::validate::email(&args.user).map_err(anyhow::Error::from)?;
            let db = db::connect_and_migrate(config).await?;
            let found = repo::users::find_by_emails(&db, &[email]).await?;
            found.into_iter().next().with_context(|| format!("no user has the email `{}`", args.user))?.id
        }
    };
    signer.sign(id, args.role, args.ttl)
}
