//! The commands, each returning the process exit code.

use std::path::Path;
use std::sync::Arc;

use ikkatsu_core::repository::ExecutionQuery;
use ikkatsu_core::{
    BatchStatus, CancellationToken, Error, ErrorKind, JobExecution, JobOperator, JobParameters,
    JobRepository, OperatorSettings,
};

use crate::args::{
    Cli, Command, ExecutionsArgs, GlobalArgs, IdArgs, JsonArgs, RestartArgs, RunArgs, StatusArgs,
    ValidateArgs,
};
use crate::exit::{self, EXIT_COMPLETED, EXIT_USAGE, stop_on_signals};
use crate::open::{existing_repository, load_definition, read_only_repository, repository};
use crate::output::{self, ExecutionJson};
use crate::progress::Progress;

/// Runs the chosen command.
pub async fn dispatch(mut cli: Cli) -> u8 {
    // The commands about the command itself read no config.
    match &cli.command {
        Command::Version(args) => return crate::about::version(args),
        Command::Completions(args) => return crate::about::completions(args),
        Command::Man(args) => return crate::about::man(args),
        _ => {}
    }
    ikkatsu_core::secret::register_environment();
    if let Err(err) = load_app_config(&mut cli.global) {
        crate::redact::print_error(&err.report());
        return EXIT_USAGE;
    }
    register_secrets(&cli.global, &cli.command);
    let global = &cli.global;
    let result = match cli.command {
        Command::Run(args) => run(global, args).await,
        Command::Executions(args) => executions(global, args).await,
        Command::Status(args) => status(global, args).await,
        Command::Restart(args) => restart(global, args).await,
        Command::Stop(args) => stop(global, args).await,
        Command::Abandon(args) => abandon(global, args).await,
        Command::Recover(args) => recover(global, args).await,
        Command::Validate(args) => validate(global, args),
        Command::Migrate(args) => migrate(global, args).await,
        Command::Overwrite(args) => crate::overwrite::overwrite(global, *args).await,
        Command::Worker(args) => crate::worker::worker(global, args).await,
        Command::Version(_) | Command::Completions(_) | Command::Man(_) => Ok(EXIT_COMPLETED),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            crate::redact::print_error(&err.report());
            exit::for_error(&err)
        }
    }
}

/// Reads the application config and settles the repository URL.
fn load_app_config(global: &mut GlobalArgs) -> Result<(), Error> {
    let path = match &global.config {
        Some(path) => Some(path.clone()),
        None => {
            Some(std::path::PathBuf::from(crate::args::DEFAULT_APP_CONFIG)).filter(|p| p.exists())
        }
    };
    if let Some(path) = path {
        global.app = ikkatsu_config::AppConfig::from_path(&path).map_err(Error::from)?;
    }
    global.repository_url = global
        .repository
        .clone()
        .or_else(|| global.app.repository.clone())
        .unwrap_or_else(|| crate::args::DEFAULT_REPOSITORY.to_string());
    Ok(())
}

async fn require_execution(
    repository: &Arc<dyn JobRepository>,
    id: i64,
) -> Result<JobExecution, Error> {
    repository.job_execution(id).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "job execution {id} does not exist in {}; list executions with `ikkatsu executions`",
                repository.describe()
            ),
        )
    })
}

fn operator(repository: Arc<dyn JobRepository>, global: &GlobalArgs) -> JobOperator {
    JobOperator::new(repository).with_settings(OperatorSettings {
        heartbeat_interval: global.heartbeat_interval,
        stale_after: global.stale_after,
    })
}

fn parse_params(specs: &[String]) -> Result<JobParameters, Error> {
    let mut params = JobParameters::new();
    for spec in specs {
        params.insert_parsed(spec)?;
    }
    Ok(params)
}

async fn finish(
    repository: &Arc<dyn JobRepository>,
    execution: JobExecution,
    json: bool,
) -> Result<u8, Error> {
    let steps = repository.step_executions(execution.id).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ExecutionJson::new(&execution, &steps))?
        );
    } else {
        print!("{}", output::summary(&execution, &steps));
    }
    Ok(exit::for_execution(&execution, &steps))
}

async fn run(global: &GlobalArgs, args: RunArgs) -> Result<u8, Error> {
    let params = ikkatsu_config::launch_parameters(&parse_params(&args.params)?)?;
    let definition = load_definition(&args.job)?;
    // Declared types and required parameters: what the execution records.
    let params = definition.typed_parameters(&params).map_err(Error::from)?;
    let registry = ikkatsu::registry(global.app.clone());
    // Check the definition before touching the repository, so a bad file records nothing.
    let job = definition.build(&registry, &params).map_err(Error::from)?;
    let repository = repository(&global.repository_url).await?;
    let operator = operator(repository.clone(), global);
    let cancel = CancellationToken::new();
    stop_on_signals(cancel.clone());
    let progress = Progress::start(
        repository.clone(),
        job.name().to_string(),
        !args.no_progress,
    );
    // Parameters resolved by the operator (defaults, incrementer, pending restart) may differ
    // from the given ones: rebuild the job with them so `${params.x}` sees the final values.
    let resolved = if args.next {
        operator.next_parameters(&job, &params).await?
    } else {
        operator.resolve_parameters(&job, &params).await?
    };
    let job = if resolved != params {
        definition
            .build(&registry, &resolved)
            .map_err(Error::from)?
    } else {
        job
    };
    let result = operator.start(&job, resolved, cancel).await;
    progress.finish().await;
    finish(&repository, result?, args.json).await
}

async fn restart(global: &GlobalArgs, args: RestartArgs) -> Result<u8, Error> {
    let repository = existing_repository(&global.repository_url).await?;
    let execution = require_execution(&repository, args.id).await?;
    let location = execution.job_configuration_location.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidState,
            format!(
                "execution {} has no job file recorded; restart it from the program that defined it",
                args.id
            ),
        )
    })?;
    let definition = load_definition(Path::new(&location))
        .map_err(|err| err.context(format!("restarting execution {}", args.id)))?;
    let job = definition
        .build(
            &ikkatsu::registry(global.app.clone()),
            &execution.parameters,
        )
        .map_err(Error::from)?;
    let operator = operator(repository.clone(), global);
    let cancel = CancellationToken::new();
    stop_on_signals(cancel.clone());
    let progress = Progress::start(
        repository.clone(),
        job.name().to_string(),
        !args.no_progress,
    );
    let result = operator.restart(args.id, &job, cancel).await;
    progress.finish().await;
    finish(&repository, result?, args.json).await
}

async fn executions(global: &GlobalArgs, args: ExecutionsArgs) -> Result<u8, Error> {
    let repository = read_only_repository(&global.repository_url).await?;
    let status = args.status.as_deref().map(str::parse).transpose()?;
    let executions = repository
        .find_job_executions(&ExecutionQuery {
            job_name: args.job,
            status,
            limit: Some(args.limit),
        })
        .await?;
    if args.json {
        let mut all_steps = Vec::with_capacity(executions.len());
        for execution in &executions {
            all_steps.push(repository.step_executions(execution.id).await?);
        }
        let items: Vec<ExecutionJson<'_>> = executions
            .iter()
            .zip(&all_steps)
            .map(|(e, s)| ExecutionJson::new(e, s))
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        print!("{}", output::table(&executions));
    }
    Ok(EXIT_COMPLETED)
}

async fn status(global: &GlobalArgs, args: StatusArgs) -> Result<u8, Error> {
    let repository = read_only_repository(&global.repository_url).await?;
    let execution = require_execution(&repository, args.id).await?;
    let steps = repository.step_executions(execution.id).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ExecutionJson::new(&execution, &steps))?
        );
    } else {
        print!("{}", output::summary(&execution, &steps));
    }
    Ok(EXIT_COMPLETED)
}

async fn stop(global: &GlobalArgs, args: IdArgs) -> Result<u8, Error> {
    let repository = existing_repository(&global.repository_url).await?;
    let execution = operator(Arc::clone(&repository), global)
        .stop(args.id)
        .await?;
    if args.json {
        return print_execution(&repository, &execution).await;
    }
    match execution.status {
        BatchStatus::Stopping => println!(
            "execution {} is STOPPING: it stops at its next chunk boundary",
            execution.id
        ),
        status => println!("execution {} is {status}", execution.id),
    }
    Ok(EXIT_COMPLETED)
}

async fn abandon(global: &GlobalArgs, args: IdArgs) -> Result<u8, Error> {
    let repository = existing_repository(&global.repository_url).await?;
    let execution = operator(Arc::clone(&repository), global)
        .abandon(args.id)
        .await?;
    if args.json {
        return print_execution(&repository, &execution).await;
    }
    println!("execution {} is {}", execution.id, execution.status);
    Ok(EXIT_COMPLETED)
}

/// Prints `execution` with its steps as `status --json` does.
async fn print_execution(
    repository: &Arc<dyn JobRepository>,
    execution: &JobExecution,
) -> Result<u8, Error> {
    let steps = repository.step_executions(execution.id).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&ExecutionJson::new(execution, &steps))?
    );
    Ok(EXIT_COMPLETED)
}

async fn recover(global: &GlobalArgs, args: JsonArgs) -> Result<u8, Error> {
    let repository = existing_repository(&global.repository_url).await?;
    let recovered = operator(Arc::clone(&repository), global).recover().await?;
    if args.json {
        let mut executions = Vec::with_capacity(recovered.len());
        for execution in &recovered {
            let steps = repository.step_executions(execution.id).await?;
            executions.push(serde_json::to_value(ExecutionJson::new(execution, &steps))?);
        }
        println!("{}", serde_json::to_string_pretty(&executions)?);
        return Ok(EXIT_COMPLETED);
    }
    if recovered.is_empty() {
        println!("no running execution has lost its process");
    }
    for execution in recovered {
        println!(
            "execution {} of job `{}` marked FAILED (its process was gone); restart it with `ikkatsu restart {}`",
            execution.id, execution.job_name, execution.id
        );
    }
    Ok(EXIT_COMPLETED)
}

fn validate(global: &GlobalArgs, args: ValidateArgs) -> Result<u8, Error> {
    let params = ikkatsu_config::launch_parameters(&parse_params(&args.params)?)?;
    let definition = load_definition(&args.job)?;
    definition
        .validate(&ikkatsu::registry(global.app.clone()), &params)
        .map_err(Error::from)?;
    if args.json {
        let json = serde_json::json!({
            "file": args.job.display().to_string(),
            "job": definition.id.value,
            "valid": true,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}: valid", args.job.display());
    }
    Ok(EXIT_COMPLETED)
}

async fn migrate(global: &GlobalArgs, args: JsonArgs) -> Result<u8, Error> {
    let repository = repository(&global.repository_url).await?;
    if args.json {
        let json = serde_json::json!({
            "repository": repository.describe(),
            "up_to_date": true,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("job repository {} is up to date", repository.describe());
    }
    Ok(EXIT_COMPLETED)
}

/// Records the secrets the command was given (the repository URL, the application config's storages and status stores, the
/// overwrite command's URLs), so that they are redacted wherever they show up.
pub fn register_secrets(global: &GlobalArgs, command: &Command) {
    use ikkatsu_core::secret::{is_secret_name, register, register_url};
    register_url(&global.repository_url);
    for url in global.app.status_stores.values() {
        register_url(url);
    }
    for connection in global.app.storages.values() {
        register_url(&connection.url);
        for (key, value) in &connection.options {
            if is_secret_name(key) {
                register(value);
            }
        }
    }
    if let Command::Overwrite(args) = command {
        let config = &args.config;
        for url in [
            Some(&config.source),
            config.target.as_ref(),
            config.status_store.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            register_url(url);
        }
    }
}
