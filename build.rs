//! Builds the web UI (`web/` → `web/dist`, embedded by `src/http/ui.rs`) when
//! it is missing or older than its sources and `npm` is available. Without
//! `npm`, or with `COFFER_SKIP_UI_BUILD=1`, nothing is built and the binary
//! serves a page explaining how to build the UI. A UI built later is picked
//! up by the next build (web/dist is watched).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const INPUTS: [&str; 7] =
    ["src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json", "public"];

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path).ok()?.filter_map(Result::ok).filter_map(|entry| newest(&entry.path())).chain(own).max()
}

fn npm() -> Option<&'static str> {
    let candidates: &[&'static str] = if cfg!(windows) { &["npm.cmd", "npm"] } else { &["npm"] };
    candidates
        .iter()
        .copied()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
}

fn run(web: &Path, npm: &str, args: &[&str]) -> bool {
    println!("cargo:warning=web UI: running `npm {}` in web/", args.join(" "));
    Command::new(npm)
        .args(args)
        .current_dir(web)
        .stdout(std::io::stderr())
        .status()
        .is_ok_and(|status| status.success())
}

fn main() {
    println!("cargo:rerun-if-env-changed=COFFER_SKIP_UI_BUILD");
    let web = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into())).join("web");
    for input in ["src", "index.html", "package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed=web/{input}");
    }
    if std::env::var("COFFER_SKIP_UI_BUILD").is_ok_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    if !web.join("package.json").exists() {
        return;
    }
    build_ui(&web);
    // A release binary embeds web/dist as it is now: a UI built later (by
    // hand, or by e2e/run) must rebuild it. Until there is a dist, web/ is
    // watched instead, so that its first build is noticed too.
    if web.join("dist").exists() {
        println!("cargo:rerun-if-changed=web/dist");
    } else {
        println!("cargo:rerun-if-changed=web");
    }
}

fn build_ui(web: &Path) {
    let built = newest(&web.join("dist").join("index.html"));
    let sources = INPUTS.iter().filter_map(|input| newest(&web.join(input))).max();
    let fresh = matches!((built, sources), (Some(built), Some(sources)) if built >= sources);
    if fresh {
        return;
    }
    let Some(npm) = npm() else {
        println!(
            "cargo:warning=web UI not built: npm not found (install Node 20 and run `npm ci && npm run build` in web/)"
        );
        return;
    };
    if !web.join("node_modules").exists() && !run(web, npm, &["ci", "--no-audit", "--no-fund"]) {
        println!("cargo:warning=web UI not built: `npm ci` failed in web/");
        return;
    }
    if !run(web, npm, &["run", "build"]) {
        println!("cargo:warning=web UI build failed: run `npm run build` in web/ to see why");
    }
}
