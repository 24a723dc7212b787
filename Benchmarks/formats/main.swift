print("bench-formats: not written yet")
