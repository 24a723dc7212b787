print("bench-trainer: not written yet")
