"""Layer: orchestration. Running the stage notebooks: each kernel's start, one notebook step, the train
scheduler, and the plan made before any model trains."""
