//! Which options a config file may set, and how their values are written in
//! TOML. One rule for the loader, `vaultplus config` and the example file:
//! every long option of every command is a key spelled as the option, but
//! `--help`, `--version`, `--config` itself and hidden options; positional
//! arguments (`keys revoke KEY`, `connections add ID`) are not keys.

use std::any::TypeId;
use std::ffi::OsStr;

use clap::{Arg, ArgAction, Command};

/// Long options that are never keys.
const NOT_KEYS: [&str; 3] = ["help", "version", "config"];

pub fn is_key(arg: &Arg) -> bool {
    arg.get_long().is_some_and(|l| !NOT_KEYS.contains(&l)) && !arg.is_hide_set()
}

/// Whether `key` names an option that is never a key (so a file naming it
/// is refused with that reason rather than as unknown).
pub fn is_reserved(key: &str) -> bool {
    NOT_KEYS.contains(&key)
}

/// The keys a (built) command reads, the global ones included, in order.
pub fn keys_of(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| is_key(a))
}

/// The key of an option (its long name).
pub fn key(arg: &Arg) -> &str {
    arg.get_long().expect("keys are long options")
}

/// The commands that run something, with their path from the root
/// (`["keys", "create"]`), in the order of `--help`. `config` is left out
/// when `with_config` is false: it reads the keys of `serve`.
pub fn leaves(root: &Command, with_config: bool) -> Vec<(Vec<&str>, &Command)> {
    fn walk<'a>(
        cmd: &'a Command,
        path: &mut Vec<&'a str>,
        out: &mut Vec<(Vec<&'a str>, &'a Command)>,
    ) {
        let subs: Vec<&Command> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push((path.clone(), cmd));
        }
        for s in subs {
            path.push(s.get_name());
            walk(s, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    for top in root.get_subcommands() {
        let name = top.get_name();
        if name == "help" || (name == "config" && !with_config) {
            continue;
        }
        walk(top, &mut vec![name], &mut out);
    }
    out
}

/// How an option takes its value, and so what a file may give it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A flag without a value: `true` or `false` in the file. `on` is the
    /// value the flag sets (`true` for a plain `--repair`).
    Flag { on: bool },
    /// One value.
    One,
    /// Several values (a repeatable option): an array in the file.
    Many,
}

pub fn shape(arg: &Arg) -> Shape {
    match arg.get_action() {
        ArgAction::SetTrue => Shape::Flag { on: true },
        ArgAction::SetFalse => Shape::Flag { on: false },
        ArgAction::Append => Shape::Many,
        // Set, and actions no option here uses (Count): one value each.
        _ => Shape::One,
    }
}

/// The TOML type a value of `arg` is written as.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Type {
    Integer,
    Float,
    Bool,
    String,
}

fn value_type(arg: &Arg) -> Type {
    if matches!(shape(arg), Shape::Flag { .. }) {
        return Type::Bool;
    }
    let id = arg.get_value_parser().type_id();
    let is = |t: TypeId| id == t;
    if [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ]
    .into_iter()
    .any(is)
    {
        Type::Integer
    } else if is(TypeId::of::<f64>()) || is(TypeId::of::<f32>()) {
        Type::Float
    } else if is(TypeId::of::<bool>()) {
        Type::Bool
    } else {
        Type::String
    }
}

/// One value of `arg`, as clap holds it, written as TOML. A number TOML
/// cannot hold (an integer above i64::MAX) is written as a string, which
/// the loader reads back the same.
fn scalar(arg: &Arg, raw: &str) -> toml::Value {
    let string = || toml::Value::String(raw.to_owned());
    match value_type(arg) {
        Type::Integer => raw
            .parse()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| string()),
        Type::Float => raw
            .parse()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| string()),
        Type::Bool => raw
            .parse()
            .map(toml::Value::Boolean)
            .unwrap_or_else(|_| string()),
        Type::String => string(),
    }
}

/// The values of `arg` written as the right side of `key = ...`, or None
/// when there are none.
pub fn render(arg: &Arg, raw: &[&OsStr]) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let values: Vec<toml::Value> = raw
        .iter()
        .map(|v| scalar(arg, &v.to_string_lossy()))
        .collect();
    match shape(arg) {
        Shape::Many => Some(toml::Value::Array(values).to_string()),
        _ => Some(values[0].to_string()),
    }
}

/// The values a file's TOML value gives `arg`, as clap takes them, or why
/// it cannot take it. Numbers and booleans are taken as their text, so a
/// quoted `"8080"` and a bare `8080` mean the same; clap's own value parser
/// then judges them.
pub fn from_toml(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    match shape(arg) {
        Shape::Flag { .. } => match value {
            toml::Value::Boolean(b) => Ok(vec![b.to_string()]),
            _ => Err(format!(
                "expected true or false, found {}",
                value.type_str()
            )),
        },
        Shape::One => match value {
            toml::Value::Array(_) => Err("takes one value, not an array".into()),
            v => Ok(vec![text(v)?]),
        },
        Shape::Many => match value {
            toml::Value::Array(items) => items.iter().map(text).collect(),
            v => Ok(vec![text(v)?]),
        },
    }
}

fn text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => Err(format!(
            "expected a single value, found {}",
            value.type_str()
        )),
    }
}
