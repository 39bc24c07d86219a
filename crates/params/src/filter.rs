//! The filter language shared by `only`, `no`, `join`, conditions and entry deps.
//!
//! `FILTER := WORD (("," | WHITE) WORD)*`, `WORD := CHAIN (".." CHAIN)*` (AND),
//! `CHAIN := LABEL ("." LABEL)*` (a contiguous run of the variant's labels, in name order),
//! `LABEL := IDENT | "(" IDENT ")" | "(" IDENT "=" IDENT ")"`.
//!
//! A plain label matches a context label of that name whether or not the context label is
//! named; a named label `(v=x)` matches only the context label `(v=x)`.

use crate::intern::Sym;

/// A label in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FLabel {
    /// The plain name, or the long name `(v=x)` when `named`.
    pub sym: Sym,
    pub named: bool,
}

/// A label of a variant's context (its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CtxLabel {
    /// The bare name (`x`).
    pub name: Sym,
    /// The printed name: `x`, or `(v=x)` for a named block.
    pub long: Sym,
}

impl FLabel {
    #[inline]
    pub fn matches(self, c: CtxLabel) -> bool {
        if self.named {
            c.long == self.sym
        } else {
            c.name == self.sym
        }
    }
}

/// A parsed filter: OR of words, each an AND of chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub words: Vec<Vec<Vec<FLabel>>>,
}

/// A set of labels that may still appear below a node (bare and long names together).
pub(crate) trait LabelSet {
    fn contains(&self, sym: Sym) -> bool;
}

/// Length of the longest run at the end of `ctx` equal to a prefix of `chain`, or
/// `chain.len()` if the whole chain occurs contiguously in `ctx`.
fn matched_len(chain: &[FLabel], ctx: &[CtxLabel]) -> usize {
    let n = chain.len();
    if n == 0 {
        return 0;
    }
    if n == 1 {
        let l = chain[0];
        return usize::from(ctx.iter().any(|&c| l.matches(c)));
    }
    // Full contiguous occurrence.
    if ctx.len() >= n {
        'start: for s in 0..=ctx.len() - n {
            for k in 0..n {
                if !chain[k].matches(ctx[s + k]) {
                    continue 'start;
                }
            }
            return n;
        }
    }
    // Longest suffix of ctx matching a prefix of the chain.
    let max = (n - 1).min(ctx.len());
    for k in (1..=max).rev() {
        let s = ctx.len() - k;
        if (0..k).all(|j| chain[j].matches(ctx[s + j])) {
            return k;
        }
    }
    0
}

impl Filter {
    /// True if some word has an empty chain (`only a .b`): evaluating it fails in the reference.
    #[cfg(test)]
    pub fn is_broken(&self) -> bool {
        self.words.iter().any(|w| w.iter().any(Vec::is_empty))
    }

    /// [`Filter::matches`], failing when evaluation reaches a word with an empty chain.
    pub fn matches_checked(&self, ctx: &[CtxLabel]) -> Result<bool, ()> {
        for w in &self.words {
            let mut all = true;
            for chain in w {
                if chain.is_empty() {
                    return Err(());
                }
                if matched_len(chain, ctx) != chain.len() {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// [`Filter::might_match`], failing when evaluation reaches a word with an empty chain.
    pub fn might_match_checked(&self, ctx: &[CtxLabel], below: &impl LabelSet) -> Result<bool, ()> {
        for w in &self.words {
            let mut all = true;
            for chain in w {
                if chain.is_empty() {
                    return Err(());
                }
                let k = matched_len(chain, ctx);
                if !chain[k..].iter().all(|l| below.contains(l.sym)) {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Set(Vec<Sym>);
    impl LabelSet for Set {
        fn contains(&self, sym: Sym) -> bool {
            self.0.contains(&sym)
        }
    }

    fn c(n: Sym) -> CtxLabel {
        CtxLabel { name: n, long: n }
    }
    fn p(n: Sym) -> FLabel {
        FLabel {
            sym: n,
            named: false,
        }
    }

    #[test]
    fn chains_are_contiguous() {
        let f = Filter {
            words: vec![vec![vec![p(1), p(2)]]],
        };
        assert_eq!(f.matches_checked(&[c(0), c(1), c(2)]), Ok(true));
        assert_eq!(f.matches_checked(&[c(1), c(0), c(2)]), Ok(false));
        assert_eq!(f.matches_checked(&[c(2), c(1)]), Ok(false));
        // a prefix at the end of ctx may continue below
        assert_eq!(
            f.might_match_checked(&[c(0), c(1)], &Set(vec![2])),
            Ok(true)
        );
        assert_eq!(
            f.might_match_checked(&[c(1), c(0)], &Set(vec![])),
            Ok(false)
        );
    }

    #[test]
    fn named_labels() {
        let named = CtxLabel { name: 1, long: 9 };
        let plain = Filter {
            words: vec![vec![vec![p(1)]]],
        };
        assert_eq!(plain.matches_checked(&[named]), Ok(true));
        let nf = FLabel {
            sym: 9,
            named: true,
        };
        let named_f = Filter {
            words: vec![vec![vec![nf]]],
        };
        assert_eq!(named_f.matches_checked(&[named]), Ok(true));
        assert_eq!(named_f.matches_checked(&[c(1)]), Ok(false));
        let broken = Filter {
            words: vec![vec![vec![], vec![p(1)]]],
        };
        assert!(broken.is_broken());
        assert_eq!(broken.matches_checked(&[c(1)]), Err(()));
    }
}
