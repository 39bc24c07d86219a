//! `--shard K/N` and `--shard auto[/N]`: which variants one machine of N runs (see the
//! runner's sharding rule), given by hand or read from the environment of the engine that
//! started this process.
//!
//! `auto` reads, in this order (the first engine found wins: a Slurm job submitted from a CI
//! job inherits the CI job's variables, and the innermost engine is the one that started us):
//!
//! | engine | index | count |
//! |---|---|---|
//! | Slurm job array | `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, ÷ `SLURM_ARRAY_TASK_STEP` | `SLURM_ARRAY_TASK_COUNT` |
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` (0-based) | `auto/N` (the Job's `completions`) |
//! | GitLab CI `parallel:` | `CI_NODE_INDEX` (1-based) | `CI_NODE_TOTAL` |
//! | CircleCI parallelism | `CIRCLE_NODE_INDEX` (0-based) | `CIRCLE_NODE_TOTAL` |
//! | Buildkite parallelism | `BUILDKITE_PARALLEL_JOB` (0-based) | `BUILDKITE_PARALLEL_JOB_COUNT` |
//!
//! A count given as `auto/N` must agree with the engine's own. Nothing is guessed: a Slurm
//! array that is not one evenly stepped range (`--array=1,4,9`) has no shard index, and is an
//! error naming the variables, as is a missing or unparsable variable.

use std::fmt;
use std::str::FromStr;

/// A `K/N` shard selector (1-based `K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    k: usize,
    n: usize,
}

/// Why a shard spec is invalid, or why `auto` found no shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Neither `K/N` with `1 <= K <= N` nor `auto[/N]`.
    #[error("shard {0:?}: expected K/N with 1 <= K <= N, `auto` or `auto/N`")]
    Spec(String),
    /// `auto` and no engine's variables in the environment.
    #[error(
        "--shard auto: no shard index in the environment (looked for {}); give --shard K/N",
        ENGINES.iter().map(|e| e.index_var).collect::<Vec<_>>().join(", ")
    )]
    NoEngine,
    /// An engine's variables that give no shard.
    #[error("--shard auto ({engine}): {why}")]
    Engine {
        /// The engine.
        engine: &'static str,
        /// What is wrong, naming the variables and their values.
        why: String,
    },
}

impl Shard {
    /// Shard `k` of `n` (1-based).
    pub fn new(k: usize, n: usize) -> Result<Self, ShardError> {
        if n == 0 || k == 0 || k > n {
            return Err(ShardError::Spec(format!("{k}/{n}")));
        }
        Ok(Shard { k, n })
    }

    /// Whether variant `index` (0-based enumeration position) belongs to this shard.
    pub fn selects(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }

    /// `K` (1-based).
    pub fn index(&self) -> usize {
        self.k
    }

    /// `N`.
    pub fn count(&self) -> usize {
        self.n
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ShardError::Spec(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let k = k.trim().parse().map_err(|_| err())?;
        let n = n.trim().parse().map_err(|_| err())?;
        Shard::new(k, n).map_err(|_| err())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// What `--shard` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// `K/N`.
    Fixed(Shard),
    /// `auto` or `auto/N`: from the environment.
    Auto {
        /// `N` when given (Kubernetes needs it; for the others it is checked).
        count: Option<usize>,
    },
}

impl FromStr for ShardArg {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t == "auto" {
            return Ok(ShardArg::Auto { count: None });
        }
        if let Some(n) = t.strip_prefix("auto/") {
            return match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(ShardArg::Auto { count: Some(n) }),
                _ => Err(ShardError::Spec(s.to_string())),
            };
        }
        s.parse().map(ShardArg::Fixed)
    }
}

/// A shard and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedShard {
    /// The shard.
    pub shard: Shard,
    /// Where it came from, for people: `--shard 2/4`, or the engine and its variables
    /// (`Slurm job array 17, SLURM_ARRAY_TASK_ID=1 of 0-3`).
    pub source: String,
    /// What ties the shards of one submission together in their default job ids
    /// (`slurm17` for array job 17), when the engine has it.
    pub tag: Option<String>,
    /// Other engines' variables that were present and not used (an outer CI job's, say).
    pub ignored: Vec<String>,
}

/// One engine's variables.
struct Engine {
    name: &'static str,
    index_var: &'static str,
    /// The first index (0 or 1).
    base: usize,
    /// The count's variable (None: `auto/N`).
    count_var: Option<&'static str>,
    /// The variable whose value ties one submission's shards together, and its prefix.
    tag: Option<(&'static str, &'static str)>,
}

/// The engines `auto` knows, innermost first (Slurm's array is read on its own: see
/// [`slurm`]).
const ENGINES: &[Engine] = &[
    Engine {
        name: "Slurm job array",
        index_var: "SLURM_ARRAY_TASK_ID",
        base: 0,
        count_var: Some("SLURM_ARRAY_TASK_COUNT"),
        tag: Some(("SLURM_ARRAY_JOB_ID", "slurm")),
    },
    Engine {
        name: "Kubernetes Indexed Job",
        index_var: "JOB_COMPLETION_INDEX",
        base: 0,
        count_var: None,
        tag: None,
    },
    Engine {
        name: "GitLab CI parallel",
        index_var: "CI_NODE_INDEX",
        base: 1,
        count_var: Some("CI_NODE_TOTAL"),
        tag: Some(("CI_PIPELINE_ID", "gitlab")),
    },
    Engine {
        name: "CircleCI parallelism",
        index_var: "CIRCLE_NODE_INDEX",
        base: 0,
        count_var: Some("CIRCLE_NODE_TOTAL"),
        tag: Some(("CIRCLE_WORKFLOW_ID", "circleci")),
    },
    Engine {
        name: "Buildkite parallelism",
        index_var: "BUILDKITE_PARALLEL_JOB",
        base: 0,
        count_var: Some("BUILDKITE_PARALLEL_JOB_COUNT"),
        tag: Some(("BUILDKITE_BUILD_ID", "buildkite")),
    },
];

impl ShardArg {
    /// The shard, reading the engines' variables through `env` for `auto` (the process
    /// environment in the CLI: [`ShardArg::resolve_from_env`]).
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResolvedShard, ShardError> {
        let given = match *self {
            ShardArg::Fixed(shard) => {
                return Ok(ResolvedShard {
                    shard,
                    source: format!("--shard {shard}"),
                    tag: None,
                    ignored: Vec::new(),
                })
            }
            ShardArg::Auto { count } => count,
        };
        let present: Vec<&Engine> = ENGINES
            .iter()
            .filter(|e| env(e.index_var).is_some())
            .collect();
        let Some((engine, outer)) = present.split_first() else {
            return Err(ShardError::NoEngine);
        };
        let fail = |why: String| ShardError::Engine {
            engine: engine.name,
            why,
        };
        let var = |name: &str| -> Result<usize, ShardError> {
            let v = env(name).ok_or_else(|| fail(format!("{name} is not set")))?;
            v.trim()
                .parse::<usize>()
                .map_err(|_| fail(format!("{name}={v:?} is not a non-negative integer")))
        };
        let (zero_based, count, detail) = if engine.index_var == "SLURM_ARRAY_TASK_ID" {
            slurm(&var, &fail)?
        } else {
            let raw = var(engine.index_var)?;
            let index = raw.checked_sub(engine.base).ok_or_else(|| {
                fail(format!(
                    "{}={raw} is below its first index, {}",
                    engine.index_var, engine.base
                ))
            })?;
            let count = match engine.count_var {
                Some(c) => Some(var(c)?),
                None => None,
            };
            let detail = match engine.count_var {
                Some(c) => format!("{}={raw}, {c}={}", engine.index_var, count.unwrap_or(0)),
                None => format!("{}={raw}", engine.index_var),
            };
            (index, count, detail)
        };
        let n = match (count, given) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                return Err(fail(format!(
                    "{detail} gives {theirs} shards, but --shard auto/{ours} says {ours}"
                )))
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                return Err(fail(format!(
                    "{detail} gives the index but not the count: give --shard auto/N, N being \
                     the number of shards (a Kubernetes Job's `completions`)"
                )))
            }
        };
        let shard = Shard::new(zero_based + 1, n).map_err(|_| {
            fail(format!(
                "{detail}: shard {} of {n} does not exist (the index is past the count)",
                zero_based + 1
            ))
        })?;
        let tag = engine.tag.and_then(|(v, prefix)| {
            let value = env(v)?;
            let clean: String = value
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!clean.is_empty()).then(|| format!("{prefix}{clean}"))
        });
        Ok(ResolvedShard {
            shard,
            source: format!("{} ({detail})", engine.name),
            tag,
            ignored: outer
                .iter()
                .map(|e| format!("{} ({})", e.name, e.index_var))
                .collect(),
        })
    }

    /// [`ShardArg::resolve`] on this process's environment.
    pub fn resolve_from_env(&self) -> Result<ResolvedShard, ShardError> {
        self.resolve(&|k| std::env::var(k).ok())
    }
}

/// A Slurm array task's 0-based position in its array, the array's size and the variables
/// read. Slurm numbers tasks by the `--array` spec (`--array=1-7:2` gives 1, 3, 5, 7), so the
/// position is `(ID − MIN) / STEP`; an array given as a list (`--array=1,4,9`) has no single
/// step, and is refused rather than guessed.
fn slurm(
    var: &dyn Fn(&str) -> Result<usize, ShardError>,
    fail: &dyn Fn(String) -> ShardError,
) -> Result<(usize, Option<usize>, String), ShardError> {
    let id = var("SLURM_ARRAY_TASK_ID")?;
    let min = var("SLURM_ARRAY_TASK_MIN")?;
    let max = var("SLURM_ARRAY_TASK_MAX")?;
    let count = var("SLURM_ARRAY_TASK_COUNT")?;
    let step = var("SLURM_ARRAY_TASK_STEP")?;
    let detail = format!("SLURM_ARRAY_TASK_ID={id} of {min}-{max}:{step}, COUNT={count}");
    let evenly = step > 0
        && id >= min
        && id <= max
        && (id - min) % step == 0
        && (max - min) % step == 0
        && (max - min) / step + 1 == count;
    if !evenly {
        return Err(fail(format!(
            "{detail}: the array is not one evenly stepped range, so the task has no shard \
             index; submit with --array=A-B or --array=A-B:S"
        )));
    }
    Ok(((id - min) / step, Some(count), detail))
}

/// The variant indices shard `shard` of a config with `total` variants selects (for tests and
/// for `--list`).
pub fn shard_indices(total: usize, shard: Shard) -> Vec<usize> {
    (0..total).filter(|&i| shard.selects(i)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic with the error is the report
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shard_parsing() {
        assert_eq!("2/3".parse::<Shard>(), Shard::new(2, 3));
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        assert_eq!(
            "auto".parse::<ShardArg>(),
            Ok(ShardArg::Auto { count: None })
        );
        assert_eq!(
            "auto/4".parse::<ShardArg>(),
            Ok(ShardArg::Auto { count: Some(4) })
        );
        assert!("auto/0".parse::<ShardArg>().is_err());
        assert!("auto/x".parse::<ShardArg>().is_err());
        assert_eq!(
            "1/2".parse::<ShardArg>(),
            Ok(ShardArg::Fixed(Shard::new(1, 2).unwrap()))
        );
    }

    fn resolve(arg: &str, vars: &[(&str, &str)]) -> Result<ResolvedShard, ShardError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        arg.parse::<ShardArg>()?.resolve(&|k| env.get(k).cloned())
    }

    fn slurm_vars(
        id: &str,
        min: &str,
        max: &str,
        step: &str,
        count: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("SLURM_ARRAY_JOB_ID", "17".to_owned()),
            ("SLURM_ARRAY_TASK_ID", id.to_owned()),
            ("SLURM_ARRAY_TASK_MIN", min.to_owned()),
            ("SLURM_ARRAY_TASK_MAX", max.to_owned()),
            ("SLURM_ARRAY_TASK_STEP", step.to_owned()),
            ("SLURM_ARRAY_TASK_COUNT", count.to_owned()),
        ]
    }

    fn resolve_owned(
        arg: &str,
        vars: &[(&'static str, String)],
    ) -> Result<ResolvedShard, ShardError> {
        let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        resolve(arg, &borrowed)
    }

    #[test]
    fn slurm_arrays_give_the_task_position() {
        // --array=0-3: task 2 is the third shard
        let r = resolve_owned("auto", &slurm_vars("2", "0", "3", "1", "4")).unwrap();
        assert_eq!(r.shard, Shard::new(3, 4).unwrap());
        assert_eq!(r.tag.as_deref(), Some("slurm17"));
        assert!(r.source.contains("SLURM_ARRAY_TASK_ID=2"), "{}", r.source);
        // --array=1-7:2 (1, 3, 5, 7): task 5 is the third of four
        let r = resolve_owned("auto/4", &slurm_vars("5", "1", "7", "2", "4")).unwrap();
        assert_eq!(r.shard, Shard::new(3, 4).unwrap());
        // --array=1,4,9 has no step that makes it a range
        let e = resolve_owned("auto", &slurm_vars("4", "1", "9", "1", "3")).unwrap_err();
        assert!(
            e.to_string().contains("not one evenly stepped range"),
            "{e}"
        );
        // auto/N must agree with the array
        let e = resolve_owned("auto/8", &slurm_vars("0", "0", "3", "1", "4")).unwrap_err();
        assert!(e.to_string().contains("auto/8"), "{e}");
        // a missing variable is named
        let mut vars = slurm_vars("0", "0", "3", "1", "4");
        vars.retain(|(k, _)| *k != "SLURM_ARRAY_TASK_STEP");
        let e = resolve_owned("auto", &vars).unwrap_err();
        assert!(
            e.to_string().contains("SLURM_ARRAY_TASK_STEP is not set"),
            "{e}"
        );
    }

    #[test]
    fn kubernetes_needs_the_count_and_ci_systems_give_theirs() {
        let e = resolve("auto", &[("JOB_COMPLETION_INDEX", "1")]).unwrap_err();
        assert!(e.to_string().contains("auto/N"), "{e}");
        let r = resolve("auto/3", &[("JOB_COMPLETION_INDEX", "2")]).unwrap();
        assert_eq!(r.shard, Shard::new(3, 3).unwrap());
        let e = resolve("auto/3", &[("JOB_COMPLETION_INDEX", "3")]).unwrap_err();
        assert!(e.to_string().contains("past the count"), "{e}");
        let e = resolve("auto/3", &[("JOB_COMPLETION_INDEX", "-1")]).unwrap_err();
        assert!(e.to_string().contains("JOB_COMPLETION_INDEX=\"-1\""), "{e}");
        // GitLab counts from 1
        let r = resolve("auto", &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "2")]).unwrap();
        assert_eq!(r.shard, Shard::new(1, 2).unwrap());
        let e = resolve("auto", &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "2")]).unwrap_err();
        assert!(e.to_string().contains("below its first index"), "{e}");
        let r = resolve(
            "auto",
            &[
                ("BUILDKITE_PARALLEL_JOB", "1"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "2"),
            ],
        )
        .unwrap();
        assert_eq!(r.shard, Shard::new(2, 2).unwrap());
        let r = resolve(
            "auto",
            &[("CIRCLE_NODE_INDEX", "0"), ("CIRCLE_NODE_TOTAL", "5")],
        )
        .unwrap();
        assert_eq!(r.shard, Shard::new(1, 5).unwrap());
    }

    #[test]
    fn the_innermost_engine_wins_and_the_others_are_reported() {
        let mut vars = slurm_vars("1", "0", "1", "1", "2");
        vars.push(("CI_NODE_INDEX", "3".to_owned()));
        vars.push(("CI_NODE_TOTAL", "4".to_owned()));
        let r = resolve_owned("auto", &vars).unwrap();
        assert_eq!(r.shard, Shard::new(2, 2).unwrap());
        assert_eq!(
            r.ignored,
            vec!["GitLab CI parallel (CI_NODE_INDEX)".to_owned()]
        );
        assert_eq!(resolve("auto", &[]), Err(ShardError::NoEngine));
        let r = resolve("2/5", &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "2")]).unwrap();
        assert_eq!(r.shard, Shard::new(2, 5).unwrap());
        assert_eq!(r.source, "--shard 2/5");
    }
}
