//! Checkpoint parameter names: detectron2's legacy names and the Hugging Face (transformers) names,
//! both mapped to the detectron2 names the native model uses.
//!
//! The HF map is the table [`HF_RULES`] (the reverse of transformers'
//! `convert_mask2former_original_pytorch_checkpoint_to_pytorch.py`); it accepts the names of
//! transformers 5.x (`attention.q_proj`, …) and 4.x (`attention.self.query`, …).

/// detectron2 names of old checkpoints → current names (docs/method.md §9.4): a `sem_seg_head.` key
/// outside `predictor.`/`pixel_decoder.` belongs to the pixel decoder, and `static_query` is
/// `query_feat`. Returns `None` for keys that are not model weights (`criterion.*`).
pub fn normalize_d2_name(name: &str) -> Option<String> {
    if name.starts_with("criterion.") {
        return None;
    }
    let mut n = name.to_string();
    if let Some(rest) = n.strip_prefix("sem_seg_head.") {
        if !rest.starts_with("predictor.") && !rest.starts_with("pixel_decoder.") {
            n = format!("sem_seg_head.pixel_decoder.{rest}");
        }
    }
    if n.contains("static_query") {
        n = n.replace("static_query", "query_feat");
    }
    Some(n)
}

/// One rule of the HF map: a detectron2 name pattern and the HF tensors that hold it. `hf` lists
/// the parts concatenated along dim 0 (Swin's q/k/v and the self-attention's `in_proj` are split
/// in HF); each part lists alternative names, transformers 5.x first, then 4.x.
///
/// In `d2`, `{i}`, `{j}` and `{k}` match one run of digits, `{s}` one name segment (no dot) and
/// `{rest}` the remainder of the name. An HF name repeats them, and `{i+1}` is `{i}` plus one.
pub struct HfRule {
    pub d2: &'static str,
    pub hf: &'static [&'static [&'static str]],
}

const fn rule(d2: &'static str, hf: &'static [&'static [&'static str]]) -> HfRule {
    HfRule { d2, hf }
}

/// The HF map, first match wins (no two patterns match the same name).
#[rustfmt::skip]
pub const HF_RULES: &[HfRule] = &[
    // Swin backbone: `model.pixel_level_module.encoder.swin.…` (5.x) or `…encoder.…` (4.x).
    rule("backbone.patch_embed.proj.{rest}", &[&[
        "model.pixel_level_module.encoder.swin.embeddings.patch_embeddings.projection.{rest}",
        "model.pixel_level_module.encoder.embeddings.patch_embeddings.projection.{rest}"]]),
    rule("backbone.patch_embed.norm.{rest}", &[&[
        "model.pixel_level_module.encoder.swin.embeddings.norm.{rest}",
        "model.pixel_level_module.encoder.embeddings.norm.{rest}"]]),
    rule("backbone.norm{i}.{rest}", &[&[
        "model.pixel_level_module.encoder.hidden_states_norms.stage{i+1}.{rest}"]]),
    rule("backbone.layers.{i}.downsample.{rest}", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.downsample.{rest}",
        "model.pixel_level_module.encoder.encoder.layers.{i}.downsample.{rest}"]]),
    rule("backbone.layers.{i}.blocks.{j}.norm1.{s}", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.layernorm_before.{s}",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.layernorm_before.{s}"]]),
    rule("backbone.layers.{i}.blocks.{j}.norm2.{s}", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.layernorm_after.{s}",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.layernorm_after.{s}"]]),
    rule("backbone.layers.{i}.blocks.{j}.attn.qkv.{s}", &[
        &["model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.attention.q_proj.{s}",
          "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.attention.self.query.{s}"],
        &["model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.attention.k_proj.{s}",
          "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.attention.self.key.{s}"],
        &["model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.attention.v_proj.{s}",
          "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.attention.self.value.{s}"]]),
    rule("backbone.layers.{i}.blocks.{j}.attn.proj.{s}", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.attention.o_proj.{s}",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.attention.output.dense.{s}"]]),
    rule("backbone.layers.{i}.blocks.{j}.attn.relative_position_bias_table", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.attention.relative_position_bias.relative_position_bias_table",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.attention.self.relative_position_bias_table"]]),
    rule("backbone.layers.{i}.blocks.{j}.attn.relative_position_index", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.attention.relative_position_bias.relative_position_index",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.attention.self.relative_position_index"]]),
    rule("backbone.layers.{i}.blocks.{j}.mlp.fc1.{s}", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.mlp.fc1.{s}",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.intermediate.dense.{s}"]]),
    rule("backbone.layers.{i}.blocks.{j}.mlp.fc2.{s}", &[&[
        "model.pixel_level_module.encoder.swin.encoder.layers.{i}.blocks.{j}.mlp.fc2.{s}",
        "model.pixel_level_module.encoder.encoder.layers.{i}.blocks.{j}.output.dense.{s}"]]),

    // Pixel decoder: `model.pixel_level_module.decoder.…`.
    rule("sem_seg_head.pixel_decoder.transformer.level_embed", &[&[
        "model.pixel_level_module.decoder.level_embed"]]),
    rule("sem_seg_head.pixel_decoder.input_proj.{rest}", &[&[
        "model.pixel_level_module.decoder.input_projections.{rest}"]]),
    rule("sem_seg_head.pixel_decoder.mask_features.{rest}", &[&[
        "model.pixel_level_module.decoder.mask_projection.{rest}"]]),
    rule("sem_seg_head.pixel_decoder.adapter_1.weight", &[&[
        "model.pixel_level_module.decoder.adapter_1.0.weight"]]),
    rule("sem_seg_head.pixel_decoder.adapter_1.norm.{rest}", &[&[
        "model.pixel_level_module.decoder.adapter_1.1.{rest}"]]),
    rule("sem_seg_head.pixel_decoder.layer_1.weight", &[&[
        "model.pixel_level_module.decoder.layer_1.0.weight"]]),
    rule("sem_seg_head.pixel_decoder.layer_1.norm.{rest}", &[&[
        "model.pixel_level_module.decoder.layer_1.1.{rest}"]]),
    rule("sem_seg_head.pixel_decoder.transformer.encoder.layers.{k}.norm1.{s}", &[&[
        "model.pixel_level_module.decoder.encoder.layers.{k}.self_attn_layer_norm.{s}"]]),
    rule("sem_seg_head.pixel_decoder.transformer.encoder.layers.{k}.norm2.{s}", &[&[
        "model.pixel_level_module.decoder.encoder.layers.{k}.final_layer_norm.{s}"]]),
    rule("sem_seg_head.pixel_decoder.transformer.encoder.layers.{k}.linear1.{s}", &[&[
        "model.pixel_level_module.decoder.encoder.layers.{k}.fc1.{s}"]]),
    rule("sem_seg_head.pixel_decoder.transformer.encoder.layers.{k}.linear2.{s}", &[&[
        "model.pixel_level_module.decoder.encoder.layers.{k}.fc2.{s}"]]),
    rule("sem_seg_head.pixel_decoder.transformer.encoder.layers.{k}.self_attn.{rest}", &[&[
        "model.pixel_level_module.decoder.encoder.layers.{k}.self_attn.{rest}"]]),

    // Transformer decoder: `model.transformer_module.…`, and the class head.
    rule("sem_seg_head.predictor.query_embed.weight", &[&[
        "model.transformer_module.queries_embedder.weight"]]),
    rule("sem_seg_head.predictor.query_feat.weight", &[&[
        "model.transformer_module.queries_features.weight"]]),
    rule("sem_seg_head.predictor.level_embed.weight", &[&[
        "model.transformer_module.level_embed.weight"]]),
    rule("sem_seg_head.predictor.decoder_norm.{rest}", &[&[
        "model.transformer_module.decoder.layernorm.{rest}"]]),
    rule("sem_seg_head.predictor.class_embed.{rest}", &[&[
        "class_predictor.{rest}"]]),
    rule("sem_seg_head.predictor.mask_embed.layers.{i}.{rest}", &[&[
        "model.transformer_module.decoder.mask_predictor.mask_embedder.{i}.0.{rest}"]]),
    rule("sem_seg_head.predictor.transformer_self_attention_layers.{i}.self_attn.in_proj_{s}", &[
        &["model.transformer_module.decoder.layers.{i}.self_attn.q_proj.{s}"],
        &["model.transformer_module.decoder.layers.{i}.self_attn.k_proj.{s}"],
        &["model.transformer_module.decoder.layers.{i}.self_attn.v_proj.{s}"]]),
    rule("sem_seg_head.predictor.transformer_self_attention_layers.{i}.self_attn.out_proj.{rest}", &[&[
        "model.transformer_module.decoder.layers.{i}.self_attn.out_proj.{rest}"]]),
    rule("sem_seg_head.predictor.transformer_self_attention_layers.{i}.norm.{rest}", &[&[
        "model.transformer_module.decoder.layers.{i}.self_attn_layer_norm.{rest}"]]),
    rule("sem_seg_head.predictor.transformer_cross_attention_layers.{i}.multihead_attn.{rest}", &[&[
        "model.transformer_module.decoder.layers.{i}.cross_attn.{rest}"]]),
    rule("sem_seg_head.predictor.transformer_cross_attention_layers.{i}.norm.{rest}", &[&[
        "model.transformer_module.decoder.layers.{i}.cross_attn_layer_norm.{rest}"]]),
    rule("sem_seg_head.predictor.transformer_ffn_layers.{i}.linear1.{s}", &[&[
        "model.transformer_module.decoder.layers.{i}.fc1.{s}"]]),
    rule("sem_seg_head.predictor.transformer_ffn_layers.{i}.linear2.{s}", &[&[
        "model.transformer_module.decoder.layers.{i}.fc2.{s}"]]),
    rule("sem_seg_head.predictor.transformer_ffn_layers.{i}.norm.{s}", &[&[
        "model.transformer_module.decoder.layers.{i}.final_layer_norm.{s}"]]),
];

/// The HF tensor(s) that hold detectron2 parameter `d2`, by [`HF_RULES`]: the outer list is
/// concatenated along dim 0, the inner list gives alternative names (5.x first, then 4.x).
/// `None`: no HF counterpart.
pub fn hf_sources(d2: &str) -> Option<Vec<Vec<String>>> {
    HF_RULES.iter().find_map(|r| {
        let caps = match_pattern(r.d2, d2)?;
        Some(
            r.hf.iter()
                .map(|alts| alts.iter().map(|t| fill(t, &caps)).collect())
                .collect(),
        )
    })
}

/// Splits `pattern` at its first `{name}`: (literal before, name, pattern after).
fn next_placeholder(pattern: &str) -> Option<(&str, &str, &str)> {
    let open = pattern.find('{')?;
    let close = open + pattern[open..].find('}')?;
    Some((
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    ))
}

/// Matches `name` against a `d2` pattern; returns the captured placeholders.
fn match_pattern<'a>(pattern: &'static str, name: &'a str) -> Option<Vec<(&'static str, &'a str)>> {
    let mut caps = Vec::new();
    let (mut pat, mut rest) = (pattern, name);
    while let Some((lit, key, after)) = next_placeholder(pat) {
        rest = rest.strip_prefix(lit)?;
        let len = if key == "rest" {
            rest.len()
        } else {
            rest.find('.').unwrap_or(rest.len())
        };
        let value = &rest[..len];
        let digits = matches!(key, "i" | "j" | "k");
        if value.is_empty() || (digits && !value.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        caps.push((key, value));
        rest = &rest[len..];
        pat = after;
    }
    (rest == pat).then_some(caps)
}

/// Fills an HF name template with the captured placeholders.
fn fill(template: &str, caps: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut t = template;
    while let Some((lit, key, after)) = next_placeholder(t) {
        out.push_str(lit);
        let (base, plus_one) = match key.strip_suffix("+1") {
            Some(k) => (k, true),
            None => (key, false),
        };
        let value = caps
            .iter()
            .find(|c| c.0 == base)
            .map(|c| c.1)
            .expect("every HF placeholder appears in its d2 pattern");
        if plus_one {
            let n: u64 = value.parse().expect("digit placeholders parse");
            out.push_str(&(n + 1).to_string());
        } else {
            out.push_str(value);
        }
        t = after;
    }
    out.push_str(t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_normalised() {
        assert_eq!(
            normalize_d2_name("sem_seg_head.adapter_1.weight").as_deref(),
            Some("sem_seg_head.pixel_decoder.adapter_1.weight")
        );
        assert_eq!(
            normalize_d2_name("sem_seg_head.pixel_decoder.adapter_1.weight").as_deref(),
            Some("sem_seg_head.pixel_decoder.adapter_1.weight")
        );
        assert_eq!(
            normalize_d2_name("sem_seg_head.predictor.static_query.weight").as_deref(),
            Some("sem_seg_head.predictor.query_feat.weight")
        );
        assert_eq!(normalize_d2_name("criterion.empty_weight"), None);
        assert_eq!(
            normalize_d2_name("backbone.norm0.weight").as_deref(),
            Some("backbone.norm0.weight")
        );
    }

    /// Every placeholder of an HF name is captured by its pattern, and no two patterns overlap on
    /// names built from them.
    #[test]
    fn hf_table_is_well_formed() {
        for r in HF_RULES {
            let mut keys = Vec::new();
            let mut p = r.d2;
            while let Some((_, k, after)) = next_placeholder(p) {
                keys.push(k);
                p = after;
            }
            for t in r.hf.iter().flat_map(|a| a.iter()) {
                let mut t = *t;
                while let Some((_, k, after)) = next_placeholder(t) {
                    let base = k.strip_suffix("+1").unwrap_or(k);
                    assert!(keys.contains(&base), "{} in {t} not in {}", k, r.d2);
                    t = after;
                }
            }
            // A sample name for the pattern is matched by it alone.
            let sample = fill(
                r.d2,
                &[
                    ("i", "3"),
                    ("j", "1"),
                    ("k", "2"),
                    ("s", "weight"),
                    ("rest", "a.bias"),
                ],
            );
            let hits: Vec<&str> = HF_RULES
                .iter()
                .filter(|o| match_pattern(o.d2, &sample).is_some())
                .map(|o| o.d2)
                .collect();
            assert_eq!(hits, vec![r.d2], "{sample}");
        }
    }

    #[test]
    fn hf_map_examples_both_transformers_generations() {
        let qkv = hf_sources("backbone.layers.2.blocks.17.attn.qkv.weight").unwrap();
        assert_eq!(qkv.len(), 3);
        assert_eq!(
            qkv[0][0],
            "model.pixel_level_module.encoder.swin.encoder.layers.2.blocks.17.attention.q_proj.weight"
        );
        assert_eq!(
            qkv[2][1],
            "model.pixel_level_module.encoder.encoder.layers.2.blocks.17.attention.self.value.weight"
        );
        assert_eq!(
            hf_sources("backbone.layers.0.blocks.1.mlp.fc2.bias").unwrap()[0][1],
            "model.pixel_level_module.encoder.encoder.layers.0.blocks.1.output.dense.bias"
        );
        assert_eq!(
            hf_sources("backbone.norm3.weight").unwrap(),
            vec![vec![
                "model.pixel_level_module.encoder.hidden_states_norms.stage4.weight".to_string()
            ]]
        );
        assert_eq!(
            hf_sources("sem_seg_head.pixel_decoder.adapter_1.norm.bias").unwrap()[0][0],
            "model.pixel_level_module.decoder.adapter_1.1.bias"
        );
        assert_eq!(
            hf_sources("sem_seg_head.pixel_decoder.transformer.encoder.layers.5.norm2.weight")
                .unwrap()[0][0],
            "model.pixel_level_module.decoder.encoder.layers.5.final_layer_norm.weight"
        );
        let inp = hf_sources(
            "sem_seg_head.predictor.transformer_self_attention_layers.8.self_attn.in_proj_bias",
        )
        .unwrap();
        assert_eq!(
            inp[1][0],
            "model.transformer_module.decoder.layers.8.self_attn.k_proj.bias"
        );
        assert_eq!(
            hf_sources("sem_seg_head.predictor.transformer_cross_attention_layers.0.multihead_attn.in_proj_weight")
                .unwrap()[0][0],
            "model.transformer_module.decoder.layers.0.cross_attn.in_proj_weight"
        );
        assert_eq!(
            hf_sources("sem_seg_head.predictor.mask_embed.layers.2.weight").unwrap()[0][0],
            "model.transformer_module.decoder.mask_predictor.mask_embedder.2.0.weight"
        );
        assert_eq!(
            hf_sources("sem_seg_head.predictor.class_embed.bias").unwrap()[0][0],
            "class_predictor.bias"
        );
        assert_eq!(hf_sources("something.else"), None);
    }
}
