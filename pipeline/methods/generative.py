"""Prompt building and routing for the generation task, shared by `refine` and `selective` (not a method
of its own: those two call their generation paths when the recipe's task is `generation`).

refine, as Somerstep et al.'s official code (UMich-FATML/w2s-refinement) runs it: B is cut into random
*refinement batches* of `refinement_batch` questions; each question is shown to the refiner (the strong
model, temperature 0) after the other members of its batch as `Question: {q}\\nAnswer: {weak answer}\\n\\n`
blocks, never itself; its greedy answer is the refined label the student is fine-tuned on. With
`infer_and_respond` the refiner first writes one sentence describing the demonstrated answers' style per
batch, and then answers each question with that sentence in front instead of the demonstrations.

selective (P(IK), Lang et al.): the strong model answers every question of A and B few-shot (weak
answers of B as demonstrations, never the query); a logistic probe on its frozen features, trained on
part of A where gold says whether its own answer was right, gives P(IK); tau is chosen on the rest of A,
and each B question gets the strong model's own answer where P(IK) >= tau, the weak answer elsewhere.
"""

import numpy as np

STYLE_QUESTION = "In one sentence, describe the style and format of the answers above:"


def refinement_batches(n: int, size: int, seed: int) -> list[np.ndarray]:
    """Rows 0..n-1 in random disjoint batches of `size` (the last may be smaller; a last batch of one
    joins the previous one, so that every question has at least one demonstration)."""
    order = np.random.default_rng(seed).permutation(n)
    batches = [order[i:i + size] for i in range(0, n, size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return batches


def batch_prompts(gen, questions: list[str], demo_answers, batches: list[np.ndarray]) -> tuple[list[int], list[str]]:
    """For every question, its prompt: the other members of its batch as demonstrations, then the question.
    Returns (rows in prompt order, prompts)."""
    rows, prompts = [], []
    for batch in batches:
        for i in batch:
            demos = [(questions[j], str(demo_answers[j])) for j in batch if j != i]
            rows.append(int(i))
            prompts.append(gen.with_demonstrations(questions[i], demos))
    return rows, prompts


def sampled_demos(n_pool: int, k: int, exclude: int | None, rng) -> np.ndarray:
    """k demonstration rows of a pool of n_pool, never `exclude` (the query itself when it is in the pool)."""
    choices = np.arange(n_pool) if exclude is None else np.delete(np.arange(n_pool), exclude)
    return rng.choice(choices, size=min(k, len(choices)), replace=False)


def few_shot_prompts(gen, queries: list[str], pool_q: list[str], pool_a, k: int, seed: int,
                     same_pool: bool) -> list[str]:
    """Each query after k demonstrations drawn from a pool of (question, answer); with `same_pool` the
    queries are the pool and a query is never its own demonstration."""
    rng = np.random.default_rng(seed)
    out = []
    for i, q in enumerate(queries):
        demos = sampled_demos(len(pool_q), k, i if same_pool else None, rng)
        out.append(gen.with_demonstrations(q, [(pool_q[j], str(pool_a[j])) for j in demos]))
    return out


def route(p_ik: np.ndarray, tau: float, own, weak) -> tuple[np.ndarray, np.ndarray]:
    """(answers, routed mask): the strong model's own answer where P(IK) >= tau, else the weak one."""
    routed = np.asarray(p_ik) >= tau
    return np.where(routed, np.asarray(own, dtype=object), np.asarray(weak, dtype=object)), routed
