//! `--config FILE` (or `VAULTPLUS_CONFIG`): options read from a TOML file.
//!
//! A file key acts as if its option were typed on the command line, unless
//! that option (or one that conflicts with it) is given as a flag or through
//! its environment variable: defaults < file < environment < flags. So clap
//! itself applies the file's values, with its own rules (required options,
//! `requires`, conflicts); each value is first checked with its option's own
//! value parser, so a bad one is refused naming its key and the file, not a
//! flag nobody typed, and before anything runs.
//!
//! Keys sit at the top level of the file. A key applies to the command run
//! when it has that option, is ignored when only other commands have it (one
//! file serves `serve` and the admin commands alike), and is refused when no
//! command has it. `--help` and `--version` never read the file, so they
//! work whatever it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use super::Cli;
use super::option_keys::{self, Shape};

/// The command line, parsed with the config file applied.
pub struct Parsed {
    pub cli: Cli,
    pub matches: ArgMatches,
    pub file: Option<ConfigFile>,
}

/// What a config file gave the command run.
pub struct ConfigFile {
    pub path: PathBuf,
    /// The options whose value is the file's: argument ID to key.
    pub applied: BTreeMap<String, String>,
    /// Keys of the file this command does not read (other commands do).
    pub ignored: Vec<String>,
}

/// A file's values for one command, each checked by its option's parser.
pub struct Loaded {
    /// (argument ID, values as clap takes them), in the file's order.
    pub values: Vec<(String, Vec<String>)>,
    pub ignored: Vec<String>,
}

/// Parses the process's arguments, applying the config file if one is
/// given. Command-line errors exit as clap's do; config file errors are
/// returned.
pub fn parse(mut args: Vec<OsString>) -> anyhow::Result<Parsed> {
    let mut root = Cli::command();
    root.build();
    // A first pass finds --config (flag or variable), the command run and
    // which options are given; errors are left to the real pass, except
    // --help and --version, which come back as errors: the file is not read.
    let file = match Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&args)
    {
        Ok(first) => prepare(&root, &first)?,
        Err(_) => None,
    };
    if let Some((_, tokens)) = &file {
        // Before a `--`, after which everything is positional.
        let at = args
            .iter()
            .skip(1)
            .position(|a| a == "--")
            .map_or(args.len(), |i| i + 1);
        args.splice(at..at, tokens.iter().cloned());
    }
    let file = file.map(|(f, _)| f);
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => exit(&e, file.as_ref()),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit(&e, file.as_ref()));
    Ok(Parsed { cli, matches, file })
}

/// Prints a clap error, saying which options came from the file (clap's
/// message names them as flags), and exits as clap does.
fn exit(e: &clap::Error, file: Option<&ConfigFile>) -> ! {
    let _ = e.print();
    if let Some(f) = file
        && e.use_stderr()
        && !f.applied.is_empty()
    {
        let keys: Vec<&str> = f.applied.values().map(String::as_str).collect();
        eprintln!(
            "\nnote: {} gave these options: {}",
            f.path.display(),
            keys.join(", ")
        );
    }
    std::process::exit(e.exit_code())
}

/// Reads the file named by the first pass, if any, and makes the arguments
/// that apply it.
fn prepare(
    root: &Command,
    first: &ArgMatches,
) -> anyhow::Result<Option<(ConfigFile, Vec<OsString>)>> {
    let Some(path) = first.get_one::<PathBuf>("config") else {
        return Ok(None);
    };
    let (mut leaf, mut m) = (root, first);
    while let Some((name, sub)) = m.subcommand() {
        leaf = leaf
            .find_subcommand(name)
            .expect("clap matched a subcommand of this tree");
        m = sub;
    }
    let loaded = load(root, leaf, path)?;
    let given = |id: &str| {
        matches!(
            m.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut applied = BTreeMap::new();
    let mut tokens = Vec::new();
    for (id, values) in loaded.values {
        let arg = find(leaf, |a| a.get_id() == id.as_str());
        let conflict_given = leaf
            .get_arg_conflicts_with(arg)
            .iter()
            .any(|c| given(c.get_id().as_str()));
        if given(&id) || conflict_given {
            continue;
        }
        let key = option_keys::key(arg);
        match option_keys::shape(arg) {
            // A flag is set by naming it; its other value is the default.
            Shape::Flag { on } => {
                if values[0] == on.to_string() {
                    tokens.push(format!("--{key}").into());
                }
            }
            Shape::One | Shape::Many => {
                tokens.extend(values.iter().map(|v| format!("--{key}={v}").into()));
            }
        }
        applied.insert(id, key.to_owned());
    }
    Ok(Some((
        ConfigFile {
            path: path.clone(),
            applied,
            ignored: loaded.ignored,
        },
        tokens,
    )))
}

fn find(cmd: &Command, pred: impl Fn(&Arg) -> bool) -> &Arg {
    cmd.get_arguments()
        .find(|a| pred(a))
        .expect("an argument of this command")
}

/// Reads and checks the file at `path` for the command `leaf` of the built
/// tree `root`: every key must be an option of some command, and each
/// value one that `leaf`'s option takes.
pub fn load(root: &Command, leaf: &Command, path: &Path) -> anyhow::Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let every_key: BTreeSet<&str> = option_keys::keys_of(root)
        .chain(
            option_keys::leaves(root, true)
                .into_iter()
                .flat_map(|(_, c)| option_keys::keys_of(c)),
        )
        .map(option_keys::key)
        .collect();
    let mut loaded = Loaded {
        values: Vec::new(),
        ignored: Vec::new(),
    };
    for (key, value) in &table {
        let at = |msg: String| anyhow!("{}: key {key:?}: {msg}", path.display());
        if value.is_table() {
            bail!(
                "{}: [{key}] is a table, but the keys are flat: write them at the top of the file, without sections",
                path.display()
            );
        }
        if option_keys::is_reserved(key) {
            return Err(at("cannot be set in a config file".into()));
        }
        match option_keys::keys_of(leaf).find(|a| option_keys::key(a) == key) {
            Some(arg) => {
                let values = option_keys::from_toml(arg, value).map_err(at)?;
                check(arg, &values).map_err(at)?;
                loaded.values.push((arg.get_id().to_string(), values));
            }
            None if every_key.contains(key.as_str()) => loaded.ignored.push(key.clone()),
            None => bail!(
                "{}: unknown key {key:?}{}; the keys are the long options of the commands (vaultplus.example.toml lists them all)",
                path.display(),
                suggest(key, &every_key)
            ),
        }
    }
    Ok(loaded)
}

fn suggest(key: &str, keys: &BTreeSet<&str>) -> String {
    keys.iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

/// Runs the values through `arg`'s own value parser (and value delimiter),
/// in a command of that one option: clap keeps its parsers to itself.
fn check(arg: &Arg, values: &[String]) -> Result<(), String> {
    if matches!(option_keys::shape(arg), Shape::Flag { .. }) {
        // `from_toml` took a TOML boolean: nothing else to check.
        return Ok(());
    }
    let probe = Command::new("vaultplus").arg(
        Arg::new("value")
            .long("value")
            .action(ArgAction::Append)
            .num_args(1)
            .value_parser(arg.get_value_parser().clone())
            .value_delimiter(arg.get_value_delimiter()),
    );
    let argv = std::iter::once("vaultplus".to_owned())
        .chain(values.iter().map(|v| format!("--value={v}")));
    probe
        .try_get_matches_from(argv)
        .map(drop)
        .map_err(|e| reason(&e))
}

/// What is wrong with the value, without clap's framing (which names the
/// flag and repeats the value, perhaps a secret).
fn reason(e: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        return format!("possible values: {}", valid.join(", "));
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Command {
        let mut root = Cli::command();
        root.build();
        root
    }

    fn leaf<'a>(root: &'a Command, path: &[&str]) -> &'a Command {
        path.iter()
            .fold(root, |c, name| c.find_subcommand(name).unwrap())
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn load_text(path: &[&str], text: &str) -> anyhow::Result<Loaded> {
        let root = tree();
        let f = file(text);
        load(&root, leaf(&root, path), f.path())
    }

    fn error(path: &[&str], text: &str) -> String {
        format!("{:#}", load_text(path, text).err().expect("refused"))
    }

    #[test]
    fn values_are_converted_and_keys_of_other_commands_ignored() {
        let loaded = load_text(
            &["serve"],
            "listen = \"0.0.0.0:8080\"\nmin-free-bytes = 67108864\nreclaim-share = 0.25\n\
             trusted-proxy = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\ns3-allow-http = true\n\
             log-format = \"json\"\norg = \"acme\"\nrepair = true\n",
        )
        .unwrap();
        let values: Vec<(&str, Vec<&str>)> = loaded
            .values
            .iter()
            .map(|(id, v)| (id.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            values,
            [
                ("listen", vec!["0.0.0.0:8080"]),
                ("min_free_bytes", vec!["67108864"]),
                ("reclaim_share", vec!["0.25"]),
                ("trusted_proxy", vec!["10.0.0.0/8", "192.168.0.0/16"]),
                ("s3_allow_http", vec!["true"]),
                ("log_format", vec!["json"]),
            ]
        );
        assert_eq!(loaded.ignored, ["org", "repair"]);
        // The same file for `fsck` takes repair, ignores listen.
        let loaded = load_text(&["fsck"], "listen = \"x\"\nrepair = true\n").unwrap();
        assert_eq!(
            loaded.values,
            [("repair".to_owned(), vec!["true".to_owned()])]
        );
        assert_eq!(loaded.ignored, ["listen"]);
    }

    #[test]
    fn bad_values_are_refused_naming_key_and_file() {
        for (text, want) in [
            (
                "min-free-bytes = \"lots\"",
                "key \"min-free-bytes\": invalid digit found in string",
            ),
            (
                "min-free-bytes = -1",
                "key \"min-free-bytes\": invalid digit",
            ),
            (
                "max-connections = 0",
                "key \"max-connections\": 0 is not in 1..",
            ),
            (
                "log-format = \"xml\"",
                "key \"log-format\": possible values: text, json",
            ),
            ("trusted-proxy = [\"nonsense\"]", "key \"trusted-proxy\": "),
            (
                "listen = [\"a\", \"b\"]",
                "key \"listen\": takes one value, not an array",
            ),
            ("s3-allow-http = \"maybe\"", "key \"s3-allow-http\": "),
            ("listen = { host = \"x\" }", "[listen] is a table"),
            ("[serve]\nlisten = \"x\"", "[serve] is a table"),
            ("config = \"other.toml\"", "key \"config\": cannot be set"),
            ("help = true", "key \"help\": cannot be set"),
        ] {
            let e = error(&["serve"], text);
            assert!(e.contains(want) && e.contains(".toml: "), "{text}: {e}");
        }
        let e = error(&["fsck"], "repair = \"yes\"");
        assert!(
            e.contains("key \"repair\": expected true or false, found string"),
            "{e}"
        );
    }

    #[test]
    fn unknown_and_duplicate_keys_are_refused() {
        let e = error(&["serve"], "lisen = \"0.0.0.0:80\"");
        assert!(
            e.contains("unknown key \"lisen\" (did you mean \"listen\"?)"),
            "{e}"
        );
        // Positional arguments are not keys.
        let e = error(&["keys", "revoke"], "key = \"vpk_x\"");
        assert!(e.contains("unknown key \"key\""), "{e}");
        let e = error(&["serve"], "listen = \"a:1\"\nlisten = \"b:2\"");
        assert!(e.contains("duplicate key"), "{e}");
        let root = tree();
        let e = format!(
            "{:#}",
            load(
                &root,
                leaf(&root, &["serve"]),
                Path::new("/nonexistent/v.toml")
            )
            .err()
            .unwrap()
        );
        assert!(
            e.contains("cannot read the config file /nonexistent/v.toml"),
            "{e}"
        );
    }

    #[test]
    fn no_argument_takes_the_options_appended_after_it() {
        // The file's options are appended to the command line: a positional
        // taking everything after it would take them as values.
        let root = tree();
        for (path, cmd) in option_keys::leaves(&root, true) {
            for a in cmd.get_arguments() {
                assert!(
                    !a.is_last_set()
                        && !a.is_trailing_var_arg_set()
                        && !a.is_allow_hyphen_values_set(),
                    "{path:?} {:?}",
                    a.get_id()
                );
            }
        }
    }
}
