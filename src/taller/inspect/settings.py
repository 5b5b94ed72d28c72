"""A run's configuration in Spanish words, each beside its key (report.html's folded table): what a teacher reads."""

from __future__ import annotations

import html

SECTIONS = {"model": "El modelo", "data": "El texto", "train": "El entrenamiento"}

WORDS = {  # key -> what it means, in Spanish; a key not listed is shown by itself
    "kind": "tipo de modelo",
    "vocab_size": "tamaño del vocabulario",
    "block_size": "contexto (tokens que ve a la vez)",
    "d_model": "anchura de la red",
    "n_heads": "cabezas de atención",
    "n_layers": "capas",
    "d_ff": "anchura interior del bloque feed-forward",
    "dropout": "dropout (parte de valores apagados al entrenar)",
    "pos_encoding": "cómo sabe la posición",
    "tie_weights": "embedding y salida comparten matriz",
    "attention": "cálculo de la atención",
    "bias": "sesgos en las capas lineales",
    "norm": "normalización",
    "activation": "función de activación",
    "qk_norm": "consultas y claves normalizadas",
    "zero_init": "proyecciones de salida empiezan en cero",
    "bigram_buckets": "filas del embedding de pares de caracteres",
    "value_embeddings": "segundo embedding sumado a los valores",
    "logit_cap": "tope suave de las puntuaciones",
    "order": "orden del n-grama (caracteres que cuenta juntos)",
    "hidden": "anchura del estado",
    "runs": "ejecuciones que mezcla",
    "corpus": "corpus",
    "split": "cómo se aparta la validación",
    "val_fraction": "parte para validación",
    "split_seed": "semilla de la validación",
    "start_marker": "el texto empieza en",
    "end_marker": "el texto acaba en",
    "lowercase": "todo en minúsculas",
    "join_lines": "líneas unidas con espacios",
    "max_chars": "caracteres como mucho (0: todos)",
    "tokenizer": "tokenizador",
    "tokenizer_vocab": "tokens del vocabulario (bpe, word)",
    "seed": "semilla",
    "device": "dispositivo",
    "dtype": "precisión numérica",
    "batch_size": "ventanas por paso (lote)",
    "lr": "learning rate",
    "min_lr": "learning rate final",
    "warmup_steps": "pasos de calentamiento",
    "weight_decay": "decaimiento de los pesos",
    "beta1": "β₁ del optimizador",
    "beta2": "β₂ del optimizador",
    "grad_clip": "recorte del gradiente",
    "optimizer": "optimizador",
    "muon_lr_ratio": "learning rate de Muon (múltiplo)",
    "schedule": "calendario del learning rate",
    "cooldown": "parte final de bajada",
    "epochs": "épocas",
    "max_time": "segundos de entrenamiento (0: por épocas)",
    "max_steps": "pasos como mucho (0: sin tope)",
    "eval_chars": "caracteres evaluados por época",
    "log_every": "pasos entre líneas de métricas",
    "plot_every": "épocas entre dibujos de los pesos",
    "samples": "muestras al final",
    "prompt": "comienzo de las muestras",
    "sample_chars": "caracteres por muestra",
    "temperature": "temperatura de las muestras",
    "sampler": "cómo se eligen las ventanas",
    "stride": "separación entre ventanas",
    "compile": "torch.compile",
    "mix_slice": "parte del texto apartada para una mezcla",
    "keep_best": "se queda con los mejores pesos",
    "ema": "media de los pesos (decaimiento)",
    "health_every": "pasos entre revisiones de salud",
    "report": "informe al final",
}


def settings_html(config: dict) -> str:
    """One table per section: the Spanish words, the key (in code) and its value."""
    parts = []
    for section, values in config.items():
        rows = "".join(
            f"<tr><td>{html.escape(WORDS.get(k, ''))}</td><td class='mono'>{html.escape(k)}</td>"
            f"<td class='mono'>{html.escape(str(v))}</td></tr>"
            for k, v in values.items()
        )
        title = SECTIONS.get(section, section)
        parts.append(
            f"<div><h3>{html.escape(title)} <span class='mono'>[{html.escape(section)}]</span></h3>"
            f"<table><tr><th>Qué es</th><th>Clave</th><th>Valor</th></tr>{rows}</table></div>"
        )
    return f"<div class='cols'>{''.join(parts)}</div>"
