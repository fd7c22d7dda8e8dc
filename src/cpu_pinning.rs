//! Pins each HTTP worker thread to a CPU of its own when Coffer owns exactly
//! as many CPUs as it runs workers (a dedicated machine, a cpuset, Kubernetes'
//! static CPU manager).
//!
//! Why: while logins hash passwords, the hashing threads (SCHED_IDLE) keep
//! every CPU busy, so an idle CPU never pulls work from a busy one. Two
//! unpinned workers then end up queued on one CPU, the second waiting out the
//! first's time slice (a 4 ms tick): the p99 of cached reads went from 0.13 ms
//! to 2.7 ms under a login flood (`perf sched timehist`). Pinned, a waking
//! worker preempts the hashing thread on its own CPU at once (0.19 ms).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use serde::{Deserialize, Serialize};

/// `COFFER_WORKER_CPU_PINNING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuPinning {
    /// Pin when the CPUs this process may use number exactly the workers.
    #[default]
    Auto,
    /// Always pin, worker `i` on the `i`-th usable CPU (round robin).
    On,
    Off,
}

/// The CPU each worker is pinned to, by worker start order; `None` leaves
/// placement to the kernel.
pub fn plan(mode: CpuPinning, usable_cpus: &[usize], workers: usize) -> Option<Vec<usize>> {
    let pin = match mode {
        CpuPinning::Off => false,
        CpuPinning::On => true,
        CpuPinning::Auto => usable_cpus.len() == workers,
    };
    (pin && workers > 0 && !usable_cpus.is_empty())
        .then(|| (0..workers).map(|worker| usable_cpus[worker % usable_cpus.len()]).collect())
}

/// The CPUs this process may use, as it started (before any pinning).
static USABLE: OnceLock<CpuSet> = OnceLock::new();

/// Whether some thread of this process has been pinned.
static PINNED: AtomicBool = AtomicBool::new(false);

fn usable_set() -> Option<CpuSet> {
    USABLE.get().copied().or_else(|| sched_getaffinity(Pid::from_raw(0)).ok())
}

fn cpus_of(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect()
}

/// Hands out the planned CPUs to worker threads as they start.
pub struct WorkerPinner {
    cpus: Option<Vec<usize>>,
    started: AtomicUsize,
}

impl WorkerPinner {
    /// The plan for `workers` threads over the CPUs the calling thread may use.
    pub fn new(mode: CpuPinning, workers: usize) -> Self {
        let cpus = usable_set().and_then(|usable| {
            let _ = USABLE.set(usable);
            plan(mode, &cpus_of(&usable), workers)
        });
        if let Some(cpus) = &cpus {
            tracing::info!(?cpus, "HTTP workers pinned one per CPU");
        }
        Self { cpus, started: AtomicUsize::new(0) }
    }

    /// Pins the calling thread to the next planned CPU; called once by each
    /// worker as it starts (a restarted worker takes the next one round robin).
    pub fn pin_current_thread(&self) {
        let Some(cpus) = &self.cpus else { return };
        let cpu = cpus[self.started.fetch_add(1, Ordering::Relaxed) % cpus.len()];
        let mut only = CpuSet::new();
        if only.set(cpu).and_then(|()| sched_setaffinity(Pid::from_raw(0), &only)).is_err() {
            tracing::warn!(cpu, "could not pin an HTTP worker to its CPU");
        } else {
            PINNED.store(true, Ordering::Relaxed);
        }
    }
}

/// Lets the threads of this process whose name starts with `prefix` run on
/// every usable CPU again. For threads a library starts from a pinned worker
/// without a hook of ours (SQLite's connection threads): inheriting the
/// worker's CPU, they would preempt its reads instead of the idle-class
/// hashing threads on the other CPU. Does nothing while no worker is pinned.
pub fn release_threads_named(prefix: &str) {
    let Some(usable) = USABLE.get().filter(|_| PINNED.load(Ordering::Relaxed)) else { return };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    for task in tasks.flatten() {
        if let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse::<i32>().ok())
            && std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.starts_with(prefix))
        {
            let _ = sched_setaffinity(Pid::from_raw(tid), usable);
        }
    }
}

/// Lets the calling thread run on every usable CPU again. Threads started by a
/// pinned worker inherit its one CPU; CPU-heavy work (thumbnail renders) calls
/// this first so that it spreads over the machine.
pub fn release_current_thread() {
    if let Some(usable) = USABLE.get() {
        let _ = sched_setaffinity(Pid::from_raw(0), usable);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn auto_pins_only_when_cpus_and_workers_match() {
        assert_eq!(plan(CpuPinning::Auto, &[0, 1], 2), Some(vec![0, 1]));
        assert_eq!(plan(CpuPinning::Auto, &[2, 5], 2), Some(vec![2, 5]));
        assert_eq!(plan(CpuPinning::Auto, &[0, 1, 2, 3], 2), None, "a CPU quota on a bigger machine");
        assert_eq!(plan(CpuPinning::Auto, &[0], 2), None);
        assert_eq!(plan(CpuPinning::Off, &[0, 1], 2), None);
        assert_eq!(plan(CpuPinning::On, &[0, 1], 3), Some(vec![0, 1, 0]));
        assert_eq!(plan(CpuPinning::On, &[], 2), None, "nothing known, nothing pinned");
    }

    proptest! {
        #[test]
        fn every_worker_gets_a_usable_cpu_and_load_is_even(
            cpus in proptest::collection::btree_set(0usize..256, 1..16),
            workers in 1usize..40,
        ) {
            let cpus: Vec<usize> = cpus.into_iter().collect();
            let planned = plan(CpuPinning::On, &cpus, workers).expect("On always pins");
            prop_assert_eq!(planned.len(), workers);
            prop_assert!(planned.iter().all(|cpu| cpus.contains(cpu)));
            let counts: Vec<usize> = cpus.iter().map(|cpu| planned.iter().filter(|p| *p == cpu).count()).collect();
            let (most, least) = (counts.iter().max().copied().unwrap_or(0), counts.iter().min().copied().unwrap_or(0));
            prop_assert!(most - least <= 1, "uneven: {counts:?}");
        }
    }

    fn allowed_cpus_of_this_thread() -> String {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).expect("field").trim().to_owned()
    }

    #[test]
    fn a_pinned_worker_runs_only_on_its_cpu_and_released_work_anywhere() {
        let usable = cpus_of(&usable_set().expect("affinity"));
        let pinner = WorkerPinner::new(CpuPinning::On, 1);
        let before = std::thread::spawn(allowed_cpus_of_this_thread).join().expect("thread");
        let (pinned, inherited, released) = std::thread::spawn(move || {
            pinner.pin_current_thread();
            let pinned = allowed_cpus_of_this_thread();
            let inherited = std::thread::spawn(allowed_cpus_of_this_thread).join().expect("child");
            release_current_thread();
            (pinned, inherited, allowed_cpus_of_this_thread())
        })
        .join()
        .expect("thread");
        assert_eq!(pinned, usable[0].to_string());
        assert_eq!(inherited, pinned, "threads a worker starts inherit its CPU");
        assert_eq!(released, before, "released, a thread may use every CPU again");
    }

    #[test]
    fn named_threads_a_pinned_worker_started_are_released() {
        let usable = cpus_of(&usable_set().expect("affinity"));
        let before = std::thread::spawn(allowed_cpus_of_this_thread).join().expect("thread");
        let pinner = WorkerPinner::new(CpuPinning::On, 1);
        let (report, reports) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            pinner.pin_current_thread();
            let library = std::thread::Builder::new().name("coffer-test-lib".into()).spawn(move || {
                report.send(allowed_cpus_of_this_thread()).expect("send");
                wait.recv().expect("go");
                report.send(allowed_cpus_of_this_thread()).expect("send");
            });
            library.expect("spawn").join().expect("library thread");
        });
        assert_eq!(reports.recv().expect("inherited"), usable[0].to_string(), "started pinned");
        release_threads_named("coffer-test-lib");
        go.send(()).expect("go");
        assert_eq!(reports.recv().expect("released"), before, "released, it may use every CPU");
        worker.join().expect("worker");
    }
}
