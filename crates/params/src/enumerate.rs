//! Enumerating a [`Config`]'s variants: sequentially ([`Config::for_each`], `count`,
//! `collect`) and in parallel (`write_json_parallel`, `count_parallel`, `map_parallel`): one
//! producer walks the tree and gathers leaves ([`Leaves`]), workers build whole chunks of
//! them, and the chunks' results come back in order.

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::error::Error;
use crate::eval::{Flow, Sink, VariantRef, Walker};
use crate::tree::{Op, OpData, OpId};
use crate::value::Value;
use crate::{Config, Variant, VariantView};

impl Config {
    /// Enumerate every variant, in the reference's order, calling `f` with a borrowed view.
    /// Return `ControlFlow::Break(())` from `f` to stop early.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&VariantView<'_, '_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error> {
        struct S<F>(F);
        impl<F: FnMut(&VariantView<'_, '_>) -> Result<ControlFlow<()>, Error>> Sink for S<F> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                let view = VariantView {
                    inner: v,
                    params: std::cell::OnceCell::new(),
                };
                Ok(match (self.0)(&view)? {
                    ControlFlow::Continue(()) => Flow::Continue,
                    ControlFlow::Break(()) => Flow::Stop,
                })
            }
        }
        let mut w = Walker::new(self);
        w.run(&mut S(&mut f))
    }

    /// Build every variant with `workers` threads and hand `emit` each variant's reference JSON
    /// line, in enumeration order (chunks of consecutive variants go to the workers in turn
    /// and come back in order through bounded channels, so memory stays bounded). Returns the
    /// number of variants. Configs with `join` are enumerated on one thread.
    pub fn write_json_parallel(
        &self,
        workers: usize,
        emit: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        // small chunks: a JSON line is ~6 KB here, and every chunk in flight is memory
        self.chunked::<Vec<u8>>(workers, 32, &|buf, v| v.write_json(buf), &mut |buf, _| {
            emit(buf)?;
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Count the variants with `workers` threads. Every dict is fully built — it is how a
    /// variant's error (a `_max` that is not a number, a bad key regex) is found — unless no
    /// dict can fail to build ([`Config::build_can_fail`]): then the walk alone counts (the
    /// set of variants never depends on values), on one thread.
    pub fn count_parallel(&self, workers: usize) -> Result<u64, Error> {
        if !self.build_can_fail() {
            return self.count_walk();
        }
        self.chunked::<()>(workers, 128, &|_, _| {}, &mut |_, _| {
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Compute `map` of every variant with `workers` threads and hand the results to `emit`
    /// in enumeration order, as [`Config::write_json_parallel`] does for JSON; `emit` may stop
    /// the enumeration with `ControlFlow::Break`. Returns the number of variants emitted.
    ///
    /// # Errors
    ///
    /// The enumeration's error (after the results of the variants before it were emitted), or
    /// the first error `emit` returns.
    pub fn map_parallel<T: Send>(
        &self,
        workers: usize,
        map: &(dyn Fn(&VariantView<'_, '_>) -> T + Sync),
        emit: &mut dyn FnMut(T) -> Result<ControlFlow<()>, Error>,
    ) -> Result<u64, Error> {
        let mut emitted = 0u64;
        self.chunked::<Vec<T>>(
            workers,
            64,
            &|out, v| {
                let view = VariantView {
                    inner: v,
                    params: std::cell::OnceCell::new(),
                };
                out.push(map(&view));
            },
            &mut |items, _| {
                for t in items.drain(..) {
                    emitted += 1;
                    if emit(t)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        Ok(emitted)
    }

    /// The parallel engine: every variant is added by `fill` to a chunk of type `C`, and the
    /// chunks of `chunk` consecutive variants reach `emit` in enumeration order with their
    /// sizes (larger chunks: less switching between the walkers' parts of the tree; smaller:
    /// less memory in flight).
    /// Emptied chunks go back to the worker that filled them, so a run needs only a few
    /// buffers, however many variants it has.
    fn chunked<C: Chunk>(
        &self,
        workers: usize,
        chunk: u64,
        fill: &(dyn Fn(&mut C, &VariantRef<'_, '_>) + Sync),
        emit: &mut Emit<'_, C>,
    ) -> Result<u64, Error> {
        use std::sync::mpsc;
        enum Msg<C> {
            Chunk(C, u64),
            Failed(C, Error),
            Done,
        }
        enum Job {
            Leaves(Box<Leaves>),
            /// The walk ended (with its error): the worker whose turn is next reports it.
            Finish(Option<Error>),
        }
        /// One thread: chunks go straight to the caller.
        struct ChunkSink<'f, C> {
            fill: &'f (dyn Fn(&mut C, &VariantRef<'_, '_>) + Sync),
            size: u64,
            chunk: C,
            count: u64,
            emit: &'f mut Emit<'f, C>,
        }
        impl<C: Chunk> ChunkSink<'_, C> {
            /// Hand the finished chunk on; false when nobody wants more.
            fn flush(&mut self) -> Result<bool, Error> {
                let count = std::mem::take(&mut self.count);
                let go = (self.emit)(&mut self.chunk, count)?.is_continue();
                self.chunk.reset();
                Ok(go)
            }
        }
        impl<C: Chunk> Sink for ChunkSink<'_, C> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                (self.fill)(&mut self.chunk, v);
                self.count += 1;
                if self.count == self.size && !self.flush()? {
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            }
        }
        /// The producer: gathered leaves, `size` per chunk, to the workers in turn.
        struct GatherSink {
            size: usize,
            leaves: Box<Leaves>,
            jobs: Vec<mpsc::SyncSender<Job>>,
            spare: mpsc::Receiver<Box<Leaves>>,
            sent: usize,
        }
        impl GatherSink {
            fn send(&mut self) -> bool {
                let mut next = self.spare.try_recv().unwrap_or_default();
                next.reset();
                let full = std::mem::replace(&mut self.leaves, next);
                let w = self.sent % self.jobs.len();
                self.sent += 1;
                self.jobs[w].send(Job::Leaves(full)).is_ok()
            }
        }
        impl Sink for GatherSink {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                self.leaves.push(v.walker());
                if self.leaves.len() == self.size && !self.send() {
                    return Ok(Flow::Stop);
                }
                Ok(Flow::Continue)
            }
        }
        /// A worker's sink: results into the current chunk.
        struct FillSink<'f, 'o, C> {
            fill: &'f (dyn Fn(&mut C, &VariantRef<'_, '_>) + Sync),
            out: &'o mut C,
        }
        impl<C> Sink for FillSink<'_, '_, C> {
            fn variant(&mut self, v: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                (self.fill)(self.out, v);
                Ok(Flow::Continue)
            }
        }
        let has_join = self.joins.iter().any(|j| !j.is_empty());
        if workers <= 1 || has_join {
            let mut total = 0u64;
            let mut counting = |c: &mut C, n: u64| {
                total += n;
                emit(c, n)
            };
            let mut sink = ChunkSink {
                fill,
                size: chunk,
                chunk: C::default(),
                count: 0,
                emit: &mut counting,
            };
            let r = Walker::new(self).run(&mut sink);
            // what was built before an error still reaches the caller
            if sink.count > 0 {
                sink.flush()?;
            }
            r?;
            return Ok(total);
        }
        // One producer walks the tree and gathers each leaf's operations; `workers` threads
        // build the dicts of whole chunks in turn; results come back in chunk order.
        std::thread::scope(|scope| {
            let mut rxs = Vec::new();
            let mut backs = Vec::new();
            let mut jobs = Vec::new();
            let (spare_tx, spare_rx) = mpsc::channel::<Box<Leaves>>();
            for _ in 0..workers {
                let (tx, rx) = mpsc::sync_channel::<Msg<C>>(4);
                let (back_tx, back_rx) = mpsc::channel::<C>();
                let (job_tx, job_rx) = mpsc::sync_channel::<Job>(8);
                rxs.push(rx);
                backs.push(back_tx);
                jobs.push(job_tx);
                let spare_tx = spare_tx.clone();
                scope.spawn(move || {
                    // private copies of the values the dicts share, so that the workers do
                    // not contend on their reference counts
                    let ops = self.private_ops();
                    let mut walker = Walker::with_ops(self, &ops);
                    for job in job_rx {
                        let leaves = match job {
                            Job::Leaves(l) => l,
                            Job::Finish(err) => {
                                let _ = tx.send(match err {
                                    None => Msg::Done,
                                    Some(e) => Msg::Failed(C::default(), e),
                                });
                                return;
                            }
                        };
                        let mut out = back_rx.try_recv().unwrap_or_default();
                        let mut failed = None;
                        let mut count = 0u64;
                        for i in 0..leaves.len() {
                            let mut sink = FillSink {
                                fill,
                                out: &mut out,
                            };
                            match leaves.build(i, &mut walker, &mut sink) {
                                Ok(_) => count += 1,
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        let _ = spare_tx.send(leaves);
                        let (msg, stop) = match failed {
                            Some(e) => (Msg::Failed(out, e), true),
                            None => (Msg::Chunk(out, count), false),
                        };
                        if tx.send(msg).is_err() || stop {
                            return;
                        }
                    }
                });
            }
            drop(spare_tx);
            let size = usize::try_from(chunk).unwrap_or(usize::MAX).max(1);
            scope.spawn(move || {
                let mut walker = Walker::new(self);
                walker.gather_only = true;
                let mut sink = GatherSink {
                    size,
                    leaves: Box::default(),
                    jobs,
                    spare: spare_rx,
                    sent: 0,
                };
                let r = walker.run(&mut sink);
                if sink.leaves.len() > 0 {
                    sink.send();
                }
                // the worker whose turn is next reports the end; the others just stop
                let next = sink.sent % sink.jobs.len();
                let mut err = r.err();
                for i in 0..sink.jobs.len() {
                    let w = (next + i) % sink.jobs.len();
                    let _ = sink.jobs[w].send(Job::Finish(err.take()));
                }
            });
            let mut total = 0u64;
            let mut c = 0usize;
            loop {
                let w = c % rxs.len();
                let msg = rxs[w].recv().unwrap_or(Msg::Done);
                match msg {
                    Msg::Chunk(mut chunk, k) => {
                        total += k;
                        if emit(&mut chunk, k)?.is_break() {
                            return Ok(total);
                        }
                        chunk.reset();
                        let _ = backs[w].send(chunk);
                    }
                    Msg::Failed(mut chunk, e) => {
                        let _ = emit(&mut chunk, 0)?;
                        return Err(e);
                    }
                    Msg::Done => return Ok(total),
                }
                c += 1;
            }
        })
    }

    /// A copy of the operations with their own strings (not sharing reference counts with
    /// `self.ops`).
    fn private_ops(&self) -> Vec<Op> {
        let own = |s: &Arc<str>| -> Arc<str> { Arc::from(&**s) };
        self.ops
            .iter()
            .map(|op| Op {
                pos: op.pos,
                data: match &op.data {
                    OpData::Assign {
                        kind,
                        key,
                        value,
                        subst,
                    } => OpData::Assign {
                        kind: *kind,
                        key: *key,
                        value: own(value),
                        subst: *subst,
                    },
                    OpData::Regex {
                        kind,
                        re,
                        value,
                        subst,
                    } => OpData::Regex {
                        kind: *kind,
                        re: re.clone(),
                        value: own(value),
                        subst: *subst,
                    },
                    OpData::Del { key } => OpData::Del { key: own(key) },
                    OpData::Batch { entries } => OpData::Batch {
                        entries: entries.iter().map(|(k, v, l)| (*k, own(v), *l)).collect(),
                    },
                    OpData::FileMap { short, file, text } => OpData::FileMap {
                        short: *short,
                        file: own(file),
                        text: own(text),
                    },
                    OpData::Suffix { suffix } => OpData::Suffix {
                        suffix: own(suffix),
                    },
                },
            })
            .collect()
    }

    /// Count the variants (every dict is fully built).
    pub fn count(&self) -> Result<u64, Error> {
        if !self.build_can_fail() {
            return self.count_walk();
        }
        let mut n = 0u64;
        self.for_each(|_| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(n)
    }

    /// Whether building some variant's dict can fail: a key regex that does not compile
    /// (an error when an operation with it applies, as the reference's), a `_max`/`_min`/`_fixed`
    /// key (compared as numbers at the end), or a `join` (which builds dicts to merge them).
    /// Otherwise the dicts only hold values, and the walk alone decides which variants exist.
    pub fn build_can_fail(&self) -> bool {
        self.has_postfix
            || self.joins.iter().any(|j| !j.is_empty())
            || self
                .ops
                .iter()
                .any(|op| matches!(&op.data, OpData::Regex { re: Err(_), .. }))
    }

    /// The number of variants by walking the tree without building dicts (see
    /// [`Config::build_can_fail`]).
    fn count_walk(&self) -> Result<u64, Error> {
        struct Count(u64);
        impl Sink for Count {
            fn variant(&mut self, _: &VariantRef<'_, '_>) -> Result<Flow, Error> {
                self.0 += 1;
                Ok(Flow::Continue)
            }
        }
        let mut w = Walker::new(self);
        w.count_only = true;
        let mut sink = Count(0);
        w.run(&mut sink)?;
        Ok(sink.0)
    }

    /// Collect every variant as an owned [`Variant`]. Memory grows with the count: prefer
    /// [`Config::for_each`] for large matrices.
    pub fn collect(&self) -> Result<Vec<Variant>, Error> {
        let mut out = Vec::new();
        self.for_each(|v| {
            out.push(v.to_variant());
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }
}

/// Leaves gathered by the parallel engine's producer (see [`Walker::gather`]), flattened
/// into a few buffers that are recycled.
#[derive(Default)]
struct Leaves {
    names: String,
    shorts: String,
    /// Per leaf: ends of its name and short name, of its ops and of its segment bounds.
    ends: Vec<(usize, usize, usize, usize)>,
    deps: Vec<Option<Value>>,
    ops: Vec<OpId>,
    bounds: Vec<usize>,
}

impl Leaves {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Empty, keeping the buffers.
    fn reset(&mut self) {
        self.names.clear();
        self.shorts.clear();
        self.ends.clear();
        self.deps.clear();
        self.ops.clear();
        self.bounds.clear();
    }

    /// Record the leaf a gathering walker stands on.
    fn push(&mut self, w: &Walker<'_>) {
        let (name, short) = w.header_texts();
        self.names.push_str(name);
        self.shorts.push_str(short);
        let (ops, bounds) = w.gathered_ops();
        self.ops.extend_from_slice(ops);
        self.bounds.extend_from_slice(bounds);
        self.ends.push((
            self.names.len(),
            self.shorts.len(),
            self.ops.len(),
            self.bounds.len(),
        ));
        self.deps.push(w.dep_value().cloned());
    }

    /// Build leaf `i` on `walker` (a building walker of the same config) into `sink`.
    fn build(
        &self,
        i: usize,
        walker: &mut Walker<'_>,
        sink: &mut dyn Sink,
    ) -> Result<Option<usize>, Error> {
        let start = if i == 0 {
            (0, 0, 0, 0)
        } else {
            self.ends[i - 1]
        };
        let end = self.ends[i];
        walker.build_gathered(
            &self.names[start.0..end.0],
            &self.shorts[start.1..end.1],
            self.deps[i].as_ref(),
            &self.ops[start.2..end.2],
            &self.bounds[start.3..end.3],
            sink,
        )
    }
}

/// What receives the chunks of [`Config::chunked`].
type Emit<'e, C> = dyn FnMut(&mut C, u64) -> Result<ControlFlow<()>, Error> + 'e;

/// A buffer of results for [`Config::chunked`]: emptied and reused.
trait Chunk: Default + Send {
    fn reset(&mut self);
}

impl<T: Send> Chunk for Vec<T> {
    fn reset(&mut self) {
        self.clear();
    }
}

impl Chunk for () {
    fn reset(&mut self) {}
}
