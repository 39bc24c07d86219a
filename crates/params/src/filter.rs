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

/// A walk's context: its labels in name order, and how many of them have each symbol as
/// bare and as long name (kept in step by [`Context::extend`] and [`Context::truncate`]), so
/// that a one-label chain, what most filters are, is decided without scanning the labels.
#[derive(Debug, Default, Clone)]
pub(crate) struct Context {
    labels: Vec<CtxLabel>,
    names: Vec<u32>,
    longs: Vec<u32>,
}

impl Context {
    /// An empty context for symbols below `nsyms` (others are counted on demand).
    pub fn new(nsyms: usize) -> Context {
        Context {
            labels: Vec::new(),
            names: vec![0; nsyms],
            longs: vec![0; nsyms],
        }
    }

    /// The labels, outermost first.
    #[inline]
    pub fn labels(&self) -> &[CtxLabel] {
        &self.labels
    }

    /// Append labels.
    pub fn extend(&mut self, labels: &[CtxLabel]) {
        for &l in labels {
            for (counts, s) in [(&mut self.names, l.name), (&mut self.longs, l.long)] {
                let i = s as usize;
                if counts.len() <= i {
                    counts.resize(i + 1, 0);
                }
                counts[i] += 1;
            }
            self.labels.push(l);
        }
    }

    /// Keep the first `len` labels.
    pub fn truncate(&mut self, len: usize) {
        while self.labels.len() > len {
            let Some(l) = self.labels.pop() else { break };
            self.names[l.name as usize] -= 1;
            self.longs[l.long as usize] -= 1;
        }
    }

    /// Whether some label matches `l`.
    #[inline]
    fn contains(&self, l: FLabel) -> bool {
        let counts = if l.named { &self.longs } else { &self.names };
        counts.get(l.sym as usize).is_some_and(|&n| n > 0)
    }
}

/// Length of the longest run at the end of `ctx` equal to a prefix of `chain`, or
/// `chain.len()` if the whole chain occurs contiguously in `ctx`.
fn matched_len(chain: &[FLabel], context: &Context) -> usize {
    let ctx = context.labels();
    let n = chain.len();
    if n == 0 {
        return 0;
    }
    if n == 1 {
        return usize::from(context.contains(chain[0]));
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
    pub fn matches_checked(&self, ctx: &Context) -> Result<bool, ()> {
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
    pub fn might_match_checked(&self, ctx: &Context, below: &impl LabelSet) -> Result<bool, ()> {
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
    fn cx(labels: &[CtxLabel]) -> Context {
        let mut c = Context::new(4);
        c.extend(labels);
        c
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
        assert_eq!(f.matches_checked(&cx(&[c(0), c(1), c(2)])), Ok(true));
        assert_eq!(f.matches_checked(&cx(&[c(1), c(0), c(2)])), Ok(false));
        assert_eq!(f.matches_checked(&cx(&[c(2), c(1)])), Ok(false));
        // a prefix at the end of ctx may continue below
        assert_eq!(
            f.might_match_checked(&cx(&[c(0), c(1)]), &Set(vec![2])),
            Ok(true)
        );
        assert_eq!(
            f.might_match_checked(&cx(&[c(1), c(0)]), &Set(vec![])),
            Ok(false)
        );
    }

    #[test]
    fn named_labels() {
        let named = CtxLabel { name: 1, long: 9 };
        let plain = Filter {
            words: vec![vec![vec![p(1)]]],
        };
        assert_eq!(plain.matches_checked(&cx(&[named])), Ok(true));
        let nf = FLabel {
            sym: 9,
            named: true,
        };
        let named_f = Filter {
            words: vec![vec![vec![nf]]],
        };
        assert_eq!(named_f.matches_checked(&cx(&[named])), Ok(true));
        assert_eq!(named_f.matches_checked(&cx(&[c(1)])), Ok(false));
        let broken = Filter {
            words: vec![vec![vec![], vec![p(1)]]],
        };
        assert!(broken.is_broken());
        assert_eq!(broken.matches_checked(&cx(&[c(1)])), Err(()));
    }
}
