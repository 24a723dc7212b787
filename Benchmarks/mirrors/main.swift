print("bench-mirrors: not written yet")
