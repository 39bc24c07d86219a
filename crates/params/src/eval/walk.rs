//! The walk: the reference's depth-first walk over the node tree, with `only`/`no`/condition
//! pruning, filter decisions, `join` and the reference's `mk_name` for joined names.

use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::filter::Context;
use crate::intern::{K_NAME, K_SHORTNAME};
use crate::tail::Tail;
use crate::tree::{FilterId, Item, NodeId};
use crate::value::Value;
use crate::Config;

use super::work::NO_POS;
use super::{Flow, Outcome, OwnedDict, SetLabels, Sink, VariantRef, Walker, Work};

impl<'c> Walker<'c> {
    pub(crate) fn new(cfg: &'c Config) -> Walker<'c> {
        Self::with_ops(cfg, &cfg.ops)
    }

    /// A walker that reads operations from `ops` (a copy of `cfg.ops`).
    pub(crate) fn with_ops(cfg: &'c Config, ops: &'c [crate::tree::Op]) -> Walker<'c> {
        Walker {
            cfg,
            ops,
            work: Work::new(cfg.syms.len()),
            ctx: Context::new(cfg.syms.len()),
            path: Vec::new(),
            short: Vec::new(),
            deps: Vec::new(),
            truth: vec![false; cfg.conds.len()],
            ops_buf: Vec::new(),
            name_buf: String::new(),
            short_buf: String::new(),
            prev_ops: Vec::new(),
            seg_bounds: Vec::new(),
            tail: Tail::default(),
            over: vec![None; cfg.syms.len()],
            overlaid: vec![false; cfg.syms.len()],
            over_keys: Vec::new(),
            post_new: Vec::new(),
            dep_cache: None,
            deps_changed: true,
            dep_source: None,
            pending_pool: Vec::new(),
            gather_only: false,
            count_only: false,
            map_marker: Value::Map(Arc::new(Vec::new())),
            json_ranks: std::cell::RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn run(&mut self, sink: &mut dyn Sink) -> Result<(), Error> {
        let root = self.cfg.root;
        let _ = self.visit(root, &[], None, sink)?;
        Ok(())
    }

    fn filter(&self, f: FilterId) -> &crate::filter::Filter {
        &self.cfg.filters[f as usize]
    }

    /// Process items against the current context; pending ones go to `out`.
    /// Evaluate `match` (or `might_match` when `might`) of a filter; a filter word with an
    /// empty chain (`only a .b`) fails when evaluation reaches it, as the reference crashes
    /// (`IndexError`) there.
    fn eval_filter(
        &self,
        f: FilterId,
        might: bool,
        below: &crate::LabelBits,
    ) -> Result<bool, Error> {
        let filter = self.filter(f);
        let r = if might {
            filter.might_match_checked(&self.ctx, &SetLabels(below, &self.cfg.label_index))
        } else {
            filter.matches_checked(&self.ctx)
        };
        r.map_err(|()| {
            let msg = "filter has a word that starts with a single `.` (e.g. `only a .b`); the reference fails with IndexError when it evaluates it".to_string();
            match self.cfg.filter_pos.get(f as usize).copied().flatten() {
                Some(p) => self.cfg.error_at(ErrorKind::Syntax, msg, p),
                None => Error::new(ErrorKind::Syntax, msg),
            }
        })
    }

    /// Process items against the current context (the reference's `process_content`, in its
    /// order of evaluation); pending ones go to `out`.
    fn process(
        &mut self,
        items: &[Item],
        below: &crate::LabelBits,
        out: &mut Vec<Item>,
    ) -> Result<Outcome, Error> {
        // With nothing below (a leaf), "might still match" is "matches": decide with one
        // evaluation per filter.
        if below.is_empty() {
            return self.process_leaf(items);
        }
        for &it in items {
            match it {
                Item::Op(_) | Item::Join(_) => {}
                Item::Only(f) => {
                    // requires_action = not might_match; is_irrelevant = match
                    if !self.eval_filter(f, true, below)? {
                        return Ok(Outcome::Pruned);
                    }
                    if !self.eval_filter(f, false, below)? {
                        out.push(it);
                    }
                }
                Item::No(f) => {
                    // requires_action = match; is_irrelevant = not might_match
                    if self.eval_filter(f, false, below)? {
                        return Ok(Outcome::Pruned);
                    }
                    if self.eval_filter(f, true, below)? {
                        out.push(it);
                    }
                }
                Item::Cond(c) => {
                    let cond = &self.cfg.conds[c as usize];
                    let f = cond.filter;
                    let truth = if cond.neg {
                        if !self.eval_filter(f, true, below)? {
                            Some(true)
                        } else if self.eval_filter(f, false, below)? {
                            Some(false)
                        } else {
                            None
                        }
                    } else if self.eval_filter(f, false, below)? {
                        Some(true)
                    } else if !self.eval_filter(f, true, below)? {
                        Some(false)
                    } else {
                        None
                    };
                    match truth {
                        Some(t) => {
                            self.truth[c as usize] = t;
                            if t {
                                let body = &self.cfg.conds[c as usize].body;
                                if let Outcome::Pruned = self.process(body, below, out)? {
                                    return Ok(Outcome::Pruned);
                                }
                            }
                        }
                        None => out.push(it),
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    }

    /// [`Walker::process`] with no labels below, where every filter is decided by one
    /// evaluation and nothing stays pending.
    fn process_leaf(&mut self, items: &[Item]) -> Result<Outcome, Error> {
        let none = crate::LabelBits::default();
        for &it in items {
            match it {
                Item::Op(_) | Item::Join(_) => {}
                Item::Only(f) => {
                    if !self.eval_filter(f, false, &none)? {
                        return Ok(Outcome::Pruned);
                    }
                }
                Item::No(f) => {
                    if self.eval_filter(f, false, &none)? {
                        return Ok(Outcome::Pruned);
                    }
                }
                Item::Cond(c) => {
                    let cond = &self.cfg.conds[c as usize];
                    let t = self.eval_filter(cond.filter, false, &none)? != cond.neg;
                    self.truth[c as usize] = t;
                    if t {
                        let body = &self.cfg.conds[c as usize].body;
                        if let Outcome::Pruned = self.process_leaf(body)? {
                            return Ok(Outcome::Pruned);
                        }
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    }

    /// Visit a node: returns the number of variants produced, or None when the sink stopped.
    fn visit(
        &mut self,
        node_id: NodeId,
        pending: &[Item],
        extra: Option<&[FilterId]>,
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        let cfg = self.cfg;
        let node = &cfg.nodes[node_id as usize];
        if extra.is_none() && !cfg.joins[node_id as usize].is_empty() {
            // the reference rebinds and extends `node.content` lists in place; model them
            let mut lists = vec![Vec::new()];
            let words = cfg.joins[node_id as usize].clone();
            return self.multiply_join(node_id, pending, &words, &mut lists, 0, sink);
        }
        // deps (prefix strings of the context before this node)
        let deps_len = self.deps.len();
        if !node.deps.words.is_empty() {
            for word in &node.deps.words {
                for chain in word {
                    let mut s = String::new();
                    for l in self.ctx.labels() {
                        s.push_str(cfg.syms.resolve(l.long));
                        s.push('.');
                    }
                    for l in chain {
                        s.push_str(cfg.syms.resolve(l.sym));
                        s.push('.');
                    }
                    s.pop();
                    self.deps.push(Arc::from(s.as_str()));
                    self.deps_changed = true;
                }
            }
        }
        let ctx_len = self.ctx.labels().len();
        let (name_len, short_buf_len) = (self.name_buf.len(), self.short_buf.len());
        self.ctx.extend(&node.name);
        self.path.push(node_id);
        let short_len = self.short.len();
        if node.append_to_shortname {
            self.short.extend(node.name.iter().map(|l| l.name));
        }
        let below = &cfg.desc[node_id as usize];
        let mut new_pending = self.pending_pool.pop().unwrap_or_default();
        new_pending.clear();
        let processed = (|| -> Result<bool, Error> {
            if let Outcome::Pruned = self.process(&node.content, below, &mut new_pending)? {
                return Ok(false);
            }
            if let Some(extra) = extra {
                let items: Vec<Item> = extra.iter().map(|&f| Item::Only(f)).collect();
                if let Outcome::Pruned = self.process(&items, below, &mut new_pending)? {
                    return Ok(false);
                }
            }
            Ok(matches!(
                self.process(pending, below, &mut new_pending)?,
                Outcome::Ok
            ))
        })();
        let ok = match processed {
            Ok(ok) => ok,
            Err(e) => {
                self.path.pop();
                self.ctx.truncate(ctx_len);
                self.short.truncate(short_len);
                self.truncate_deps(deps_len);
                self.name_buf.truncate(name_len);
                self.short_buf.truncate(short_buf_len);
                return Err(e);
            }
        };
        let mut result = Some(0usize);
        if ok {
            // the name texts, for the variants below (not built for pruned nodes)
            for (i, l) in node.name.iter().enumerate() {
                if ctx_len + i > 0 {
                    self.name_buf.push('.');
                }
                self.name_buf.push_str(cfg.syms.resolve(l.long));
            }
            if node.append_to_shortname {
                for (i, l) in node.name.iter().enumerate() {
                    if short_len + i > 0 {
                        self.short_buf.push('.');
                    }
                    self.short_buf.push_str(cfg.syms.resolve(l.name));
                }
            }
            if node.children.is_empty() {
                result = self.leaf(sink)?;
            } else {
                let mut count = 0usize;
                for &child in &node.children {
                    match self.visit(child, &new_pending, None, sink)? {
                        None => {
                            result = None;
                            break;
                        }
                        Some(n) => count += n,
                    }
                    if cfg.options.defaults
                        && !node.expanded
                        && cfg.nodes[child as usize].default
                        && count > 0
                    {
                        break;
                    }
                }
                if result.is_some() {
                    result = Some(count);
                }
            }
        }
        self.pending_pool.push(new_pending);
        self.short.truncate(short_len);
        self.path.pop();
        self.ctx.truncate(ctx_len);
        self.truncate_deps(deps_len);
        self.name_buf.truncate(name_len);
        self.short_buf.truncate(short_buf_len);
        Ok(result)
    }

    /// Keep the first `len` dep prefixes, noting a change for [`Walker::gather`].
    fn truncate_deps(&mut self, len: usize) {
        if self.deps.len() > len {
            self.deps.truncate(len);
            self.deps_changed = true;
        }
    }

    /// The reference's `multiply_join`: every word of the node's joins becomes an `only`, and
    /// the dicts selected by each are combined. `lists` models the Python lists bound to
    /// `node.content` (`lists[bind]`), including the in-place extension that makes inner
    /// words' filters leak into later outer iterations, exactly as in the reference.
    fn multiply_join(
        &mut self,
        node_id: NodeId,
        pending: &[Item],
        words: &[FilterId],
        lists: &mut Vec<Vec<FilterId>>,
        bind: usize,
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        struct Collect<'a> {
            out: &'a mut Vec<(OwnedDict, String, String)>,
        }
        impl Sink for Collect<'_> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                let d = v.owned();
                let name = v.str_of(K_NAME);
                let short = v.str_of(K_SHORTNAME);
                self.out.push((d, name, short));
                Ok(Flow::Continue)
            }
        }
        // content_orig = node.content[:]; node.content += [only]
        let orig = lists.len();
        lists.push(lists[bind].clone());
        lists[bind].push(words[0]);
        let current = lists[bind].clone();
        if words.len() == 1 {
            return self.visit(node_id, pending, Some(&current), sink);
        }
        let mut firsts = Vec::new();
        self.visit(
            node_id,
            pending,
            Some(&current),
            &mut Collect { out: &mut firsts },
        )?;
        let mut count = 0usize;
        for (d1, n1, s1) in firsts {
            // node.content = content_orig
            let mut rest = Vec::new();
            self.multiply_join(
                node_id,
                pending,
                &words[1..],
                lists,
                orig,
                &mut Collect { out: &mut rest },
            )?;
            for (d2, n2, s2) in rest {
                let mut d = d1.clone();
                for (k, v, p) in d2.entries {
                    d.set(k, v, p);
                }
                let name = mk_name(&n1, &n2).map_err(|m| self.join_error(node_id, m))?;
                let short = mk_name(&s1, &s2).map_err(|m| self.join_error(node_id, m))?;
                d.set(K_NAME, Value::from(name.as_str()), NO_POS);
                d.set(K_SHORTNAME, Value::from(short.as_str()), NO_POS);
                count += 1;
                if let Flow::Stop = sink.variant(&VariantRef::Owned(self, &d))? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(count))
    }

    fn join_error(&self, node_id: NodeId, m: String) -> Error {
        let node = &self.cfg.nodes[node_id as usize];
        // point at the first `join` of the node
        for item in &node.content {
            if let Item::Join(_) = item {
                break;
            }
        }
        let pos = node.content.iter().find_map(|i| match i {
            Item::Op(o) => Some(self.ops[*o as usize].pos),
            _ => None,
        });
        match pos {
            Some(p) => self.cfg.error_at(ErrorKind::Value, m, p),
            None => Error::new(ErrorKind::Value, m),
        }
    }
}

/// The reference's `mk_name` for joined dicts.
fn mk_name(n1: &str, n2: &str) -> Result<String, String> {
    let a: Vec<char> = n1.chars().collect();
    let b: Vec<char> = n2.chars().collect();
    let Some(first_diff) = a.iter().zip(b.iter()).position(|(x, y)| x != y) else {
        return Err(format!(
            "cannot join variants `{n1}` and `{n2}`: one name is a prefix of the other (the reference fails with `ValueError: 0 is not in list`)"
        ));
    };
    let common: String = a[..first_diff].iter().collect();
    let cp = match common.rfind('.') {
        Some(i) => common[..i].to_string(),
        None => String::new(),
    };
    // The reference strips `^cp` as a regex; escape-free for plain names, emulate it.
    let strip = |n: &str| -> String {
        match fancy_regex::Regex::new(&format!("^{cp}")) {
            Ok(re) => re.replacen(n, 1, "").into_owned(),
            Err(_) => n.strip_prefix(cp.as_str()).unwrap_or(n).to_string(),
        }
    };
    let p1 = strip(n1);
    let p2 = strip(n2);
    Ok(if cp.is_empty() {
        format!("{p1}.{p2}")
    } else {
        format!("{cp}{p1}{p2}")
    })
}
