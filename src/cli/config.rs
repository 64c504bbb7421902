//! `vaultplus config [serve's options]`: the configuration `serve` would run
//! with, as TOML a config file takes back, each value with where it came
//! from; secrets redacted. `--example` prints the example config file.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, CommandFactory};

use super::config_file::ConfigFile;
use super::{Cli, ServeArgs, config_example, option_keys, redact};

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print a commented example config file instead: every key of every
    /// command with its default (vaultplus.example.toml is this output).
    #[arg(long, hide = true)]
    example: bool,
    // Parsed only to check them and to read where each value came from.
    #[command(flatten)]
    _serve: ServeArgs,
}

/// `matches` are those of the `config` subcommand.
pub fn run(args: &ConfigArgs, matches: &ArgMatches, file: Option<&ConfigFile>) {
    let mut root = Cli::command();
    root.build();
    if args.example {
        print!("{}", config_example::render(&root));
        return;
    }
    let cmd = root
        .find_subcommand("config")
        .expect("the config subcommand");
    print!("{}", effective(cmd, matches, file));
}

/// The listing: one `key = value  # from ...` line per option that has a
/// value, a comment line for each that has none.
pub fn effective(cmd: &Command, matches: &ArgMatches, file: Option<&ConfigFile>) -> String {
    let mut out =
        String::from("# The configuration `vaultplus serve` runs with (secrets redacted).\n");
    match file {
        Some(f) => out.push_str(&format!("# Config file: {}\n", f.path.display())),
        None => out.push_str("# No config file (--config FILE or VAULTPLUS_CONFIG).\n"),
    }
    for arg in option_keys::keys_of(cmd) {
        let id = arg.get_id().as_str();
        let key = option_keys::key(arg);
        let raw: Vec<&std::ffi::OsStr> =
            matches.get_raw(id).map(|r| r.collect()).unwrap_or_default();
        let redacted: Vec<std::ffi::OsString> = raw
            .iter()
            .map(|v| {
                if redact::is_secret(arg) {
                    redact::redact(&v.to_string_lossy()).into()
                } else {
                    v.to_os_string()
                }
            })
            .collect();
        let shown: Vec<&std::ffi::OsStr> = redacted.iter().map(|v| v.as_os_str()).collect();
        let from_file = file.filter(|f| f.applied.contains_key(id));
        let source = match (matches.value_source(id), from_file) {
            (_, Some(f)) => format!("file {}", f.path.display()),
            (Some(ValueSource::EnvVariable), None) => format!(
                "env {}",
                arg.get_env().unwrap_or_default().to_string_lossy()
            ),
            (Some(ValueSource::CommandLine), None) => "flag".to_owned(),
            _ => "default".to_owned(),
        };
        match option_keys::render(arg, &shown) {
            Some(value) => out.push_str(&format!("{key} = {value}  # from {source}\n")),
            None => out.push_str(&format!("# {key} is not set\n")),
        }
    }
    if let Some(f) = file.filter(|f| !f.ignored.is_empty()) {
        out.push_str(&format!(
            "# Keys of the file that serve does not read (other commands do): {}\n",
            f.ignored.join(", ")
        ));
    }
    out
}
