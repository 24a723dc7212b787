print("bench-preprocessing: not written yet")
