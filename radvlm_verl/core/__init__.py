"""The vocabularies every layer shares; importing them needs only the standard library (a progress
bar loads tqdm when it is drawn).

- :mod:`~radvlm_verl.core.tasks`: task names, their families, the RL task tuple, and the rule that
  routes a sample (``extra_info["task"]``, else its ``data_source``) to a family;
- :mod:`~radvlm_verl.core.thinking`: the ``</think>`` answer split and the one rule that says
  whether a sample is scored in thinking mode;
- :mod:`~radvlm_verl.core.atomic_files`: atomic file output (a temporary file renamed into place);
- :mod:`~radvlm_verl.core.jsonl`: JSON Lines files (predictions, teacher traces): one reader that
  names the bad line, one atomic writer;
- :mod:`~radvlm_verl.core.progress`: the progress bars of converters, evaluation and teacher traces;
- :mod:`~radvlm_verl.core.ground_truth`: the ground-truth JSON of grounding rows (one writer, one reader).

Nothing here imports the rest of ``radvlm_verl``, so every other package may import from it.
"""
