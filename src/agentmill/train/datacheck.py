"""`agentmill data check`: the validation `train` does first, without training."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from agentmill.config import load_recipe
from agentmill.model.load import load_tokenizer
from agentmill.train.common import StageContext
from agentmill.train.pipeline import apply_task_prompts, check_encoding, load_datasets


def check_recipe_data(recipe_path: Path, overrides: list[str], console) -> dict[str, dict]:
    """Validate every file in full; print records, tokens and truncations per file."""
    recipe = load_recipe(recipe_path, overrides)
    datasets = load_datasets(recipe)
    apply_task_prompts(recipe, datasets)
    tokenizer = load_tokenizer(recipe.base_model)
    ctx = StageContext(recipe=recipe, tokenizer=tokenizer, model=None, accelerator=None,
                       work_dir=Path("."), logger=None, datasets=datasets)
    stats = check_encoding(ctx)
    table = Table(title=f"data of {recipe_path}")
    for col in ("file", "format", "records", "examples", "tokens", "trained tokens", "truncated"):
        table.add_column(col, justify="left" if col in ("file", "format") else "right", no_wrap=True)
    base = Path(recipe_path).resolve().parent
    for path, s in stats.items():
        shown = Path(path).relative_to(base) if Path(path).is_relative_to(base) else path
        table.add_row(str(shown), s["format"], f"{s['records']:,}", f"{s['examples']:,}", f"{s['tokens']:,}",
                      f"{s['trained_tokens']:,}", f"{s['truncated']:,}")
    console.print(table)
    console.print(f"[green]all {len(stats)} data files are valid[/] (max_length {recipe.train.max_length})")
    return stats
