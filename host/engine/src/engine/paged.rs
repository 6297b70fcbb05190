//! The forward pass of the paged CUDA graph: one run over the whole ragged
//! batch (the operator takes it as it is, so there are no attention groups),
//! fetching logit rows or, when every row wants only its arg max, token ids,
//! for rows drawn at a temperature their candidates, and for scored rows
//! the log-probabilities asked for (`device_sampling`).

use super::{Engine, Pool};
use crate::batch::{BatchEntry, DeviceCandidates, DeviceScores, ForwardOutput, Logits};
use crate::paged_pool::Fetch;
use crate::paged_step::paged_step;
use anyhow::{Result, anyhow, bail};
use ort::value::{DynValue, Tensor};

impl Engine {
    /// One run of the paged graph over the whole batch.
    pub(super) fn run_paged(&mut self, batch: &[BatchEntry]) -> Result<ForwardOutput> {
        let Pool::Paged(pool) = &mut self.pool else {
            bail!("internal: run_paged without a paged pool");
        };
        let s = paged_step(batch)?;
        let (b, t, p) = (batch.len(), s.input_ids.len(), s.logit_index.len());
        let failed = |e: ort::Error| anyhow!("forward pass failed: {e}");
        let i32t = |shape: Vec<usize>, data: Vec<i32>| -> Result<DynValue> {
            Ok(Tensor::from_array((shape, data))?.into_dyn())
        };
        let step: [(&str, DynValue); 6] = [
            (
                "input_ids",
                Tensor::from_array((vec![t], s.input_ids))?.into_dyn(),
            ),
            ("cu_seqlens", i32t(vec![b + 1], s.cu_seqlens)?),
            ("past_seqlens", i32t(vec![b], s.past_seqlens)?),
            ("block_table", i32t(vec![b, s.max_blocks], s.block_table)?),
            ("attention_metadata", i32t(vec![2], s.metadata.to_vec())?),
            (
                "logit_index",
                Tensor::from_array((vec![p], s.logit_index))?.into_dyn(),
            ),
        ];
        // When every row that wants logits wants only its arg max, only the
        // ids cross to the host (8 bytes a row instead of 4 x vocabulary);
        // when the others are drawn at a temperature, their candidates too.
        // Scored rows (`select`) likewise stay there and give back one
        // log-probability per token. Rows a host-side decoder reads
        // (`Last`, `All`: constrained or penalised draws, logprobs) are
        // fetched alone, so that one such row does not bring the whole
        // step's rows with it; only when every row is one of them does the
        // pass hand over its logits directly.
        let greedy = |e: &BatchEntry| matches!(e.logits, Logits::None | Logits::Greedy);
        let host_rows: usize = batch
            .iter()
            .zip(&s.rows)
            .filter(|(e, _)| matches!(e.logits, Logits::Last | Logits::All))
            .map(|(_, r)| r.len())
            .sum();
        let fetch = if p > 0 && batch.iter().all(greedy) {
            Fetch::Ids
        } else if p > 0 && self.sampler.is_some() && host_rows < p {
            Fetch::IdsLeavingLogits
        } else {
            Fetch::Logits
        };
        let bind = pool.binding(fetch)?;
        for (name, value) in &step {
            bind.bind_input(*name, value).map_err(failed)?;
        }
        let mut outputs = self.session.run_binding(bind).map_err(failed)?;
        self.stats.forward_passes += 1;
        self.stats.tokens_processed += t as u64;
        self.stats.logit_rows += p as u64;
        let vocab = self.meta.config.vocab_size;
        if fetch == Fetch::Logits {
            let (_, logits) = outputs["logits"].try_extract_tensor::<f32>()?;
            let mut out = ForwardOutput::new(logits.to_vec(), vocab, s.rows);
            out.set_greedy(batch, None);
            return Ok(out);
        }
        let (_, ids) = outputs["next_token"].try_extract_tensor::<i64>()?;
        let ids = ids.to_vec();
        if fetch == Fetch::Ids {
            let mut out = ForwardOutput::new(Vec::new(), vocab, vec![0..0; batch.len()]);
            out.set_greedy(batch, Some((&ids, &s.rows)));
            return Ok(out);
        }
        let logits = outputs
            .remove("logits")
            .ok_or_else(|| anyhow!("internal: the forward pass left no logits"))?;
        drop(outputs);
        let logits = std::sync::Arc::new(logits);
        let sampler = self.sampler.as_mut().expect("checked above");
        // The host-side rows, gathered in one run, each entry's in order.
        let (mut wanted, mut host_ranges) = (Vec::new(), vec![0..0; b]);
        for (i, e) in batch.iter().enumerate() {
            if matches!(e.logits, Logits::Last | Logits::All) {
                let at = wanted.len();
                wanted.extend(s.rows[i].clone().map(|r| r as i64));
                host_ranges[i] = at..wanted.len();
            }
        }
        let fetched = if wanted.is_empty() {
            Vec::new()
        } else {
            self.stats.rows_fetched_alone += wanted.len() as u64;
            sampler.fetch_rows(&logits, &wanted)?
        };
        let mut out = ForwardOutput::new(fetched, vocab, host_ranges);
        out.set_greedy(batch, Some((&ids, &s.rows)));
        if batch.iter().any(|e| e.logits.is_scored()) {
            let mut rows_of_entry = vec![0..0; b];
            for (i, e) in batch.iter().enumerate() {
                if e.logits.is_scored() {
                    rows_of_entry[i] = s.rows[i].clone();
                    self.stats.scored_rows += s.rows[i].len() as u64;
                }
            }
            out.set_scores(DeviceScores {
                rows_of_entry,
                source: sampler.score_source(std::sync::Arc::clone(&logits)),
            });
        }
        let (mut rows, mut temps) = (Vec::new(), Vec::new());
        let (mut of_entry, mut row_of_entry) = (vec![None; b], vec![None; b]);
        for (i, e) in batch.iter().enumerate() {
            if let Logits::Sample(temp) = e.logits {
                of_entry[i] = Some(rows.len());
                row_of_entry[i] = Some(s.rows[i].start);
                rows.push(s.rows[i].start as i64);
                temps.push(temp.get());
            }
        }
        if rows.is_empty() {
            return Ok(out);
        }
        let c = sampler.sample_rows(&logits, &rows, &temps)?;
        self.stats.sampled_rows += rows.len() as u64;
        out.set_candidates(DeviceCandidates {
            ids: c.ids,
            logits: c.logits,
            lse: c.lse,
            k: c.k,
            of_entry,
            row_of_entry,
            source: sampler.row_source(logits, rows, vocab),
        });
        Ok(out)
    }
}
