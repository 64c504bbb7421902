//! `--config FILE` / `VAULTPLUS_CONFIG`: precedence (defaults < file < env <
//! flags) as `vaultplus config` shows it and as a real server follows it;
//! bad files refused before anything is touched; admin commands reading the
//! same file; secrets redacted; the example file true.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::harness::{BIN, TestServer, assert_success};

/// Runs vaultplus in `dir` with only the given VAULTPLUS_* variables (none
/// of the test runner's leak in).
fn vaultplus(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(dir, args, env).output().expect("run vaultplus")
}

fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTPLUS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(out: &Output) -> String {
    assert_success(out);
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `vaultplus config` line of `key`.
fn line<'a>(listing: &'a str, key: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{listing}"))
}

#[test]
fn precedence_is_default_then_file_then_env_then_flag() {
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "vaultplus.toml",
        r#"
listen = "0.0.0.0:9999"
min-free-bytes = 1000
blob-cache-bytes = 2000
trusted-proxy = ["10.0.0.0/8", "192.168.0.0/16"]
s3-allow-http = true
log-format = "json"
"#,
    );
    let path = file.to_str().unwrap();
    let env = [
        ("VAULTPLUS_MIN_FREE_BYTES", "3000"),
        ("VAULTPLUS_BLOB_CACHE_BYTES", "4000"),
    ];
    let out = stdout(&vaultplus(
        dir.path(),
        &["config", "--config", path, "--blob-cache-bytes", "5000"],
        &env,
    ));
    assert_eq!(
        line(&out, "listen"),
        format!("listen = \"0.0.0.0:9999\"  # from file {path}")
    );
    assert_eq!(
        line(&out, "min-free-bytes"),
        "min-free-bytes = 3000  # from env VAULTPLUS_MIN_FREE_BYTES"
    );
    assert_eq!(
        line(&out, "blob-cache-bytes"),
        "blob-cache-bytes = 5000  # from flag"
    );
    assert_eq!(
        line(&out, "trusted-proxy"),
        format!("trusted-proxy = [\"10.0.0.0/8\", \"192.168.0.0/16\"]  # from file {path}")
    );
    assert_eq!(
        line(&out, "s3-allow-http"),
        format!("s3-allow-http = true  # from file {path}")
    );
    assert_eq!(
        line(&out, "log-format"),
        format!("log-format = \"json\"  # from file {path}")
    );
    assert_eq!(
        line(&out, "fetch-concurrency"),
        "fetch-concurrency = 8  # from default"
    );
    assert_eq!(line(&out, "public-url"), "# public-url is not set");

    // VAULTPLUS_CONFIG names the file as --config does; a flag beats env.
    let out = stdout(&vaultplus(
        dir.path(),
        &["config", "--listen", "127.0.0.1:1"],
        &[
            ("VAULTPLUS_CONFIG", path),
            ("VAULTPLUS_LISTEN", "127.0.0.1:2"),
        ],
    ));
    assert_eq!(
        line(&out, "listen"),
        "listen = \"127.0.0.1:1\"  # from flag"
    );
    assert_eq!(
        line(&out, "min-free-bytes"),
        format!("min-free-bytes = 1000  # from file {path}")
    );

    // The listing is a config file: read back, it gives the same values.
    let out = stdout(&vaultplus(dir.path(), &["config", "--config", path], &[]));
    let again = write(dir.path(), "again.toml", &out);
    let again_path = again.to_str().unwrap();
    let reread = stdout(&vaultplus(
        dir.path(),
        &["config", "--config", again_path],
        &[],
    ));
    let values = |listing: &str| -> Vec<String> {
        listing
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  # from ").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(values(&reread), values(&out));
    assert!(values(&out).len() >= 20, "{out}");
    assert!(
        reread
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.ends_with(&format!("# from file {again_path}"))),
        "{reread}"
    );
}

#[tokio::test]
async fn serve_listens_where_the_file_says() {
    let dir = TempDir::new().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let file = write(
        dir.path(),
        "vaultplus.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\ndata-dir = \"{}\"\nrate-limit-per-minute = 0\n",
            data.display()
        ),
    );
    let backend = crate::backend::Backend::fresh().await;
    let env: Vec<(&str, &str)> = backend
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("RUST_LOG", "warn")])
        .collect();
    let mut child = command(
        dir.path(),
        &["serve", "--config", file.to_str().unwrap()],
        &env,
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn vaultplus");
    let out = BufReader::new(child.stdout.take().unwrap());
    let listening = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("vaultplus listening on ").map(str::to_owned));
    let base = format!("http://127.0.0.1:{port}");
    let answer = async {
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
                return Some(r.status().as_u16());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening.as_deref().is_some_and(|l| l.starts_with(&base)),
        "{listening:?}"
    );
    assert_eq!(answer, Some(200));
    if !crate::backend::cluster_selected() {
        assert!(
            data.join("catalog.sqlite").exists(),
            "data-dir from the file"
        );
    }
}

#[test]
fn unknown_key_is_refused_and_nothing_is_created() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("new-data");
    let file = write(
        dir.path(),
        "vaultplus.toml",
        &format!(
            "data-dir = \"{}\"\nlisen = \"0.0.0.0:8080\"\n",
            data.display()
        ),
    );
    let out = vaultplus(
        dir.path(),
        &["serve", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains(&format!("{}: unknown key \"lisen\"", file.display()))
            && e.contains("did you mean \"listen\""),
        "{e}"
    );
    assert!(!data.exists(), "nothing is created");
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("new-data");
    for (text, want) in [
        (
            "min-free-bytes = \"lots\"",
            "key \"min-free-bytes\": invalid digit found in string",
        ),
        (
            "max-connections = 0",
            "key \"max-connections\": 0 is not in 1..",
        ),
        (
            "log-format = \"xml\"",
            "key \"log-format\": possible values: text, json",
        ),
        (
            "listen = [\"a:1\", \"b:2\"]",
            "key \"listen\": takes one value",
        ),
        ("[serve]\nlisten = \"a:1\"", "[serve] is a table"),
    ] {
        let file = write(
            dir.path(),
            "bad.toml",
            &format!("data-dir = \"{}\"\n{text}\n", data.display()),
        );
        let out = vaultplus(
            dir.path(),
            &["serve", "--config", file.to_str().unwrap()],
            &[],
        );
        let e = stderr(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            e.contains(&format!("{}: ", file.display())) && e.contains(want),
            "{text}: {e}"
        );
        assert!(!data.exists(), "{text}: nothing is created");
    }
    // A bad value is refused even where the environment overrides it.
    let file = write(dir.path(), "bad.toml", "min-free-bytes = \"lots\"\n");
    let out = vaultplus(
        dir.path(),
        &["config", "--config", file.to_str().unwrap()],
        &[("VAULTPLUS_MIN_FREE_BYTES", "5")],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("key \"min-free-bytes\""));
}

#[test]
fn missing_file_and_duplicate_keys_are_refused() {
    let dir = TempDir::new().unwrap();
    let absent = dir.path().join("absent.toml");
    let absent = absent.to_str().unwrap();
    for (args, env) in [
        (vec!["serve", "--config", absent], vec![]),
        (vec!["serve"], vec![("VAULTPLUS_CONFIG", absent)]),
    ] {
        let out = vaultplus(dir.path(), &args, &env);
        assert!(!out.status.success());
        let e = stderr(&out);
        assert!(
            e.contains(&format!("cannot read the config file {absent}")),
            "{e}"
        );
    }
    assert!(!dir.path().join("vaultplus-data").exists());

    let file = write(
        dir.path(),
        "dup.toml",
        "listen = \"a:1\"\nlisten = \"b:2\"\n",
    );
    let out = vaultplus(
        dir.path(),
        &["serve", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("dup.toml") && e.contains("duplicate key"), "{e}");

    // --help and --version do not read the file.
    for args in [vec!["serve", "--help"], vec!["--version"]] {
        let out = vaultplus(
            dir.path(),
            &[&args[..], &["--config", absent]].concat(),
            &[],
        );
        assert_success(&out);
    }
}

#[tokio::test]
async fn admin_commands_read_the_same_file() {
    if crate::backend::embedded_only("admin_commands_read_the_same_file") {
        return;
    }
    let s = TestServer::start().await;
    let work = TempDir::new().unwrap();
    // Serve's keys are ignored by the admin commands; theirs by serve.
    let file = write(
        work.path(),
        "vaultplus.toml",
        &format!(
            "data-dir = \"{}\"\nlisten = \"0.0.0.0:1\"\norg = \"default\"\nenabled = true\n",
            s.data_dir().display()
        ),
    );
    let file = file.to_str().unwrap();

    // Without the file the default ./vaultplus-data holds nothing.
    let out = vaultplus(work.path(), &["keys", "list"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no vaultplus catalog"),
        "{}",
        stderr(&out)
    );

    let listed = stdout(&vaultplus(
        work.path(),
        &["keys", "list", "--config", file],
        &[],
    ));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(" default ") && l.contains("ACCOUNT")),
        "{listed}"
    );
    let checked = stdout(&vaultplus(work.path(), &["fsck", "--config", file], &[]));
    assert!(checked.contains("consistent"), "{checked}");

    // `org` (required) and `enabled` come from the file; --disabled, which
    // conflicts with enabled, wins over it as a flag.
    let added = stdout(&vaultplus(
        work.path(),
        &["connections", "add", "--config", file, "conn_file"],
        &[],
    ));
    assert!(added.contains("conn_file vaultPlus=enabled"), "{added}");
    let added = stdout(&vaultplus(
        work.path(),
        &[
            "connections",
            "add",
            "--config",
            file,
            "--disabled",
            "conn_flag",
        ],
        &[],
    ));
    assert!(added.contains("conn_flag vaultPlus=disabled"), "{added}");
    let listed = stdout(&s.cli(&["connections", "list", "--org", "default"]));
    assert!(
        listed.contains("conn_file") && listed.contains("conn_flag"),
        "{listed}"
    );
}

#[test]
fn secrets_are_redacted_in_vaultplus_config() {
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "vaultplus.toml",
        r#"
database = "postgres://vp:pa55word@db.example:5432/vaultplus"
upstream-url = "http://upstream.example"
upstream-key = "file-sekrit-123"
"#,
    );
    let path = file.to_str().unwrap();
    let out = stdout(&vaultplus(
        dir.path(),
        &["config", "--config", path],
        &[("VAULTPLUS_S3_SECRET_ACCESS_KEY", "env-s3cret-456")],
    ));
    for secret in ["pa55word", "file-sekrit-123", "env-s3cret-456"] {
        assert!(!out.contains(secret), "{secret} shown:\n{out}");
    }
    assert_eq!(
        line(&out, "database"),
        format!("database = \"postgres://vp:***@db.example:5432/vaultplus\"  # from file {path}")
    );
    assert_eq!(
        line(&out, "upstream-key"),
        format!("upstream-key = \"***\"  # from file {path}")
    );
    assert_eq!(
        line(&out, "s3-secret-access-key"),
        "s3-secret-access-key = \"***\"  # from env VAULTPLUS_S3_SECRET_ACCESS_KEY"
    );
    let out = stdout(&vaultplus(
        dir.path(),
        &[
            "config",
            "--config",
            path,
            "--upstream-key",
            "flag-sekrit-789",
        ],
        &[],
    ));
    assert!(!out.contains("flag-sekrit-789"), "{out}");
    assert_eq!(
        line(&out, "upstream-key"),
        "upstream-key = \"***\"  # from flag"
    );
}

#[test]
fn example_file_is_what_config_example_prints_and_loads() {
    let dir = TempDir::new().unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("vaultplus.example.toml"),
    )
    .unwrap();
    let printed = stdout(&vaultplus(dir.path(), &["config", "--example"], &[]));
    assert!(
        printed == example,
        "vaultplus.example.toml differs from `vaultplus config --example`: regenerate it"
    );
    // Every `# key = default` line, uncommented, is a file serve takes, and
    // `vaultplus config` then shows those defaults as coming from it.
    let uncommented: String = example
        .lines()
        .filter(|l| !l.ends_with("(no default)"))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let file = write(dir.path(), "uncommented.toml", &uncommented);
    let path = file.to_str().unwrap();
    let out = stdout(&vaultplus(dir.path(), &["config", "--config", path], &[]));
    assert_eq!(
        line(&out, "min-free-bytes"),
        format!("min-free-bytes = 67108864  # from file {path}")
    );
    assert!(
        out.contains("# Keys of the file that serve does not read"),
        "{out}"
    );
}
