print("bench-catalog: not written yet")
