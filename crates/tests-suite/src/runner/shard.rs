//! `--shard K/N`: which variants one machine of N runs (see the runner's sharding rule).

use std::fmt;
use std::str::FromStr;

/// A `K/N` shard selector (1-based `K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    k: usize,
    n: usize,
}

/// Why a shard spec is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard {0:?}: expected K/N with 1 <= K <= N")]
pub struct ShardError(String);

impl Shard {
    /// Shard `k` of `n` (1-based).
    pub fn new(k: usize, n: usize) -> Result<Self, ShardError> {
        if n == 0 || k == 0 || k > n {
            return Err(ShardError(format!("{k}/{n}")));
        }
        Ok(Shard { k, n })
    }

    /// Whether variant `index` (0-based enumeration position) belongs to this shard.
    pub fn selects(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ShardError(s.to_string());
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

/// The variant indices shard `shard` of a config with `total` variants selects (for tests and
/// for `--list`).
pub fn shard_indices(total: usize, shard: Shard) -> Vec<usize> {
    (0..total).filter(|&i| shard.selects(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!("2/3".parse::<Shard>(), Shard::new(2, 3));
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}
