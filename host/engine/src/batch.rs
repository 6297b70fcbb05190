//! What one forward pass takes and gives back: a ragged batch of entries
//! (new tokens, the pool slots of their history, where their K/V go) and
//! the logit rows each entry asked for, in batch order.

use crate::sampling::Candidates;
use std::ops::Range;

/// Which logits a batch entry wants back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (a prefill chunk that is not the last).
    None,
    /// The last new token's (next-token prediction).
    Last,
    /// Every new token's (scoring a continuation, as `select` does).
    All,
    /// Only the arg max of the last new token's logits, lowest index on
    /// ties (a greedy row that needs nothing else of the distribution): the
    /// paged CUDA graph computes it on the device, so that only the token id
    /// crosses to the host when every row of a step is such a row. Read it
    /// with [`ForwardOutput::token`]; the row itself may be absent.
    Greedy,
    /// The last new token's logits, for a draw at this temperature (no
    /// penalties, no constraint, no logprobs): the paged CUDA graph then
    /// hands over only the row's [`Candidates`] (its largest logits and its
    /// log-sum-exp at the temperature), keeps the row on the device, and
    /// fetches it on [`ForwardOutput::full_row`]. Other engines return the
    /// row itself, as for [`Logits::Last`].
    Sample(Temperature),
    /// Every new token's logits, as [`Logits::All`], but read only as the
    /// log-probabilities of given tokens through [`ForwardOutput::log_probs`]
    /// (scoring a `select` choice): the paged CUDA graph then keeps the rows
    /// on the device and computes those log-probabilities there, so that
    /// only one number per scored token crosses to the host. Other engines
    /// return the rows, and the log-probabilities are computed from them.
    Score,
    /// The last new token's logits, read only through
    /// [`ForwardOutput::log_probs`], as [`Logits::Score`] (a `select`'s
    /// prompt row, which scores every choice's first token).
    ScoreLast,
}

impl Logits {
    /// Whether the rows are read only as log-probabilities
    /// ([`Logits::Score`], [`Logits::ScoreLast`]).
    pub fn is_scored(self) -> bool {
        matches!(self, Logits::Score | Logits::ScoreLast)
    }

    /// Whether the last new token's logits are computed.
    pub fn wants_last(self) -> bool {
        !matches!(self, Logits::None)
    }
}

/// A sampling temperature above 0, kept as its bits so that [`Logits`]
/// stays `Eq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Temperature(u32);

impl Temperature {
    /// `t`, if it is a finite temperature above 0.
    pub fn new(t: f32) -> Option<Self> {
        (t.is_finite() && t > 0.0).then(|| Temperature(t.to_bits()))
    }

    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

/// Fetches logit rows that stayed on the device, by row of the pass.
pub(crate) trait RowSource: Send {
    fn fetch(&self, row: usize) -> anyhow::Result<Vec<f32>>;
}

/// Rows kept on the host, for [`ForwardOutput::serve_samples_as_candidates`].
struct HostRows {
    logits: Vec<f32>,
    vocab: usize,
}

impl RowSource for HostRows {
    fn fetch(&self, row: usize) -> anyhow::Result<Vec<f32>> {
        self.logits
            .get(row * self.vocab..(row + 1) * self.vocab)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| anyhow::anyhow!("internal: no logit row {row}"))
    }
}

/// Computes log-probabilities of tokens at logit rows that stayed on the
/// device: `queries` are (row of the pass, token).
pub(crate) trait ScoreSource: Send {
    fn log_probs(&self, queries: &[(usize, u32)]) -> anyhow::Result<Vec<f64>>;
}

impl ScoreSource for HostRows {
    fn log_probs(&self, queries: &[(usize, u32)]) -> anyhow::Result<Vec<f64>> {
        queries
            .iter()
            .map(|&(row, token)| {
                let r = self.fetch(row)?;
                anyhow::ensure!(
                    (token as usize) < r.len(),
                    "token {token} is outside the vocabulary"
                );
                Ok(crate::sampling::log_prob(&r, token))
            })
            .collect()
    }
}

/// The [`Logits::Score`] rows of a pass that stayed on the device.
pub(crate) struct DeviceScores {
    /// Per entry, its rows of the pass (empty when it scored nothing).
    pub rows_of_entry: Vec<Range<usize>>,
    pub source: Box<dyn ScoreSource>,
}

/// The device's sampling summary of the [`Logits::Sample`] rows of a pass.
pub(crate) struct DeviceCandidates {
    /// `[S, K]` ids and logits, most likely first.
    pub ids: Vec<i64>,
    pub logits: Vec<f32>,
    /// `[S]` log-sum-exp of each row at its temperature.
    pub lse: Vec<f32>,
    pub k: usize,
    /// Per entry, its index among the sampled rows.
    pub of_entry: Vec<Option<usize>>,
    /// Per entry, its row of the pass (where [`RowSource`] finds it).
    pub row_of_entry: Vec<Option<usize>>,
    pub source: Box<dyn RowSource>,
}

/// One sequence's part of a forward pass.
#[derive(Clone, Copy, Debug)]
pub struct BatchEntry<'a> {
    /// The new tokens.
    pub tokens: &'a [u32],
    /// Pool slots of the tokens before them (positions `0..history.len()`).
    pub history: &'a [u32],
    /// Pool slots that receive the new tokens' K/V, one per token.
    pub new_slots: &'a [u32],
    pub logits: Logits,
}

/// Logits of one forward pass.
pub struct ForwardOutput {
    logits: Vec<f32>,
    vocab: usize,
    rows: Vec<Range<usize>>,
    /// The arg max of each [`Logits::Greedy`] entry, by entry.
    tokens: Vec<Option<u32>>,
    /// Set when the rows of [`Logits::Sample`] entries stayed on the device.
    candidates: Option<DeviceCandidates>,
    /// Set when the rows of [`Logits::Score`] entries stayed on the device.
    scores: Option<DeviceScores>,
}

impl ForwardOutput {
    /// Output assembled from `logits` (`vocab` values per row) and each
    /// entry's row range; for engines other than ONNX Runtime's (tests).
    pub fn new(logits: Vec<f32>, vocab: usize, rows: Vec<Range<usize>>) -> Self {
        ForwardOutput {
            tokens: vec![None; rows.len()],
            candidates: None,
            scores: None,
            logits,
            vocab,
            rows,
        }
    }

    /// Sets the arg max of every [`Logits::Greedy`] entry of `batch`:
    /// `device` holds those computed on the device, one per logit row of
    /// the pass, with each entry's rows, or is `None` when they are to be
    /// read off the entries' last logit rows.
    pub(crate) fn set_greedy(
        &mut self,
        batch: &[BatchEntry],
        device: Option<(&[i64], &[Range<usize>])>,
    ) {
        for (i, e) in batch.iter().enumerate() {
            if e.logits != Logits::Greedy {
                continue;
            }
            self.tokens[i] = match device {
                Some((ids, rows)) => rows[i]
                    .clone()
                    .last()
                    .and_then(|r| ids.get(r))
                    .map(|&t| t as u32),
                None => self.last(i).map(crate::sampling::argmax),
            };
        }
    }

    /// The arg max of entry `i`'s last logits, if it asked for
    /// [`Logits::Greedy`] and the engine computed it.
    pub fn token(&self, i: usize) -> Option<u32> {
        self.tokens.get(i).copied().flatten()
    }

    pub(crate) fn set_candidates(&mut self, c: DeviceCandidates) {
        self.candidates = Some(c);
    }

    /// Serves the [`Logits::Sample`] entries of `batch` as the paged CUDA
    /// graph does, with their `k` candidates computed here from their rows,
    /// which then leave [`ForwardOutput::last`] and are reached through
    /// [`ForwardOutput::full_row`]: for engines without a device (the
    /// scheduler's tests), so that the scheduler's path is tested anywhere.
    pub fn serve_samples_as_candidates(&mut self, batch: &[BatchEntry], k: usize) {
        let k = k.min(self.vocab);
        let mut c = DeviceCandidates {
            ids: Vec::new(),
            logits: Vec::new(),
            lse: Vec::new(),
            k,
            of_entry: vec![None; batch.len()],
            row_of_entry: vec![None; batch.len()],
            source: Box::new(HostRows {
                logits: self.logits.clone(),
                vocab: self.vocab,
            }),
        };
        for (i, e) in batch.iter().enumerate() {
            let (Logits::Sample(t), Some(row)) = (e.logits, self.rows[i].clone().last()) else {
                continue;
            };
            let r = &self.logits[row * self.vocab..(row + 1) * self.vocab];
            let mut idx: Vec<usize> = (0..r.len()).collect();
            idx.sort_by(|&a, &b| r[b].total_cmp(&r[a]).then(a.cmp(&b)));
            let t = t.get() as f64;
            let max = r[idx[0]] as f64 / t;
            let lse = r
                .iter()
                .map(|&l| (l as f64 / t - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            c.of_entry[i] = Some(c.lse.len());
            c.row_of_entry[i] = Some(row);
            c.lse.push(lse as f32);
            c.ids.extend(idx[..k].iter().map(|&j| j as i64));
            c.logits.extend(idx[..k].iter().map(|&j| r[j]));
            self.rows[i] = 0..0;
        }
        self.candidates = Some(c);
    }

    pub(crate) fn set_scores(&mut self, s: DeviceScores) {
        self.scores = Some(s);
    }

    /// Serves the [`Logits::Score`] entries of `batch` as the paged CUDA
    /// graph does: their rows leave [`ForwardOutput::rows`] and are reached
    /// only through [`ForwardOutput::log_probs`]. For engines without a
    /// device (the scheduler's tests), so that the scheduler's path is
    /// tested anywhere.
    pub fn serve_scores_as_on_device(&mut self, batch: &[BatchEntry]) {
        let mut rows_of_entry = vec![0..0; batch.len()];
        for (i, e) in batch.iter().enumerate() {
            if e.logits.is_scored() {
                rows_of_entry[i] = std::mem::replace(&mut self.rows[i], 0..0);
            }
        }
        self.scores = Some(DeviceScores {
            rows_of_entry,
            source: Box::new(HostRows {
                logits: self.logits.clone(),
                vocab: self.vocab,
            }),
        });
    }

    /// The log-probability of each query's token under the softmax of a
    /// logit row, a query being (entry, row of the entry, token): from the
    /// host rows where the entry has them, else computed on the device in
    /// one call for the whole step ([`Logits::Score`] rows that stayed
    /// there). Fails on a row the entry did not ask for or a token outside
    /// the vocabulary.
    pub fn log_probs(&self, queries: &[(usize, usize, u32)]) -> anyhow::Result<Vec<f64>> {
        let mut out = vec![0.0; queries.len()];
        let mut remote = Vec::new();
        let mut remote_at = Vec::new();
        for (q, &(entry, k, token)) in queries.iter().enumerate() {
            if entry >= self.rows.len() {
                anyhow::bail!("internal: no batch entry {entry}");
            }
            if (token as usize) >= self.vocab {
                anyhow::bail!("token {token} is outside the vocabulary of {}", self.vocab);
            }
            if let Some(row) = self.rows(entry).nth(k) {
                out[q] = crate::sampling::log_prob(row, token);
                continue;
            }
            let row = self
                .scores
                .as_ref()
                .and_then(|s| s.rows_of_entry.get(entry))
                .and_then(|r| r.clone().nth(k))
                .ok_or_else(|| anyhow::anyhow!("internal: entry {entry} has no logit row {k}"))?;
            remote.push((row, token));
            remote_at.push(q);
        }
        if !remote.is_empty() {
            let s = self.scores.as_ref().expect("rows found above");
            let lp = s.source.log_probs(&remote)?;
            anyhow::ensure!(
                lp.len() == remote.len(),
                "internal: {} log-probabilities for {} queries",
                lp.len(),
                remote.len()
            );
            for (q, v) in remote_at.into_iter().zip(lp) {
                out[q] = v;
            }
        }
        Ok(out)
    }

    /// The device's candidates of entry `i`, if it asked for
    /// [`Logits::Sample`] and its row stayed on the device (then
    /// [`ForwardOutput::last`] is `None` and [`ForwardOutput::full_row`]
    /// fetches the row).
    pub fn candidates(&self, i: usize) -> Option<Candidates<'_>> {
        let c = self.candidates.as_ref()?;
        let s = (*c.of_entry.get(i)?)?;
        Some(Candidates {
            ids: &c.ids[s * c.k..(s + 1) * c.k],
            logits: &c.logits[s * c.k..(s + 1) * c.k],
            lse: c.lse[s],
            vocab: self.vocab,
        })
    }

    /// Entry `i`'s last logit row, fetched from the device if it stayed
    /// there (a draw from [`ForwardOutput::candidates`] that landed in the
    /// tail), else copied from the host rows.
    pub fn full_row(&self, i: usize) -> anyhow::Result<Vec<f32>> {
        if let Some(c) = &self.candidates
            && let Some(Some(row)) = c.row_of_entry.get(i)
        {
            return c.source.fetch(*row);
        }
        self.last(i)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| anyhow::anyhow!("internal: entry {i} has no logit row"))
    }

    /// The logit rows of batch entry `i` (empty for [`Logits::None`]).
    pub fn rows(&self, i: usize) -> impl ExactSizeIterator<Item = &[f32]> {
        let r = self.rows[i].clone();
        r.map(move |row| &self.logits[row * self.vocab..(row + 1) * self.vocab])
    }

    /// The last logit row of batch entry `i`, if it asked for any.
    pub fn last(&self, i: usize) -> Option<&[f32]> {
        self.rows(i).last()
    }
}
