/// The stylesheet and the one script, served from memory (no build step, nothing fetched from
/// elsewhere: the pages work offline).
enum Assets {
    static let stylesheet = """
    body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
    header { background: #1d2b3a; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
    header a { color: #cfe0f0; text-decoration: none; margin-right: 12px; }
    header a.active { color: #fff; font-weight: 600; }
    .brand { font-weight: 700; }
    .progress { margin-left: auto; font-size: 12px; color: #cfe0f0; }
    main { padding: 12px 16px; }
    form.query { display: flex; gap: 8px; }
    form.query input { flex: 1; font: 14px monospace; padding: 6px; }
    .error { background: #fde8e8; border: 1px solid #e0a0a0; padding: 6px 10px; margin: 8px 0; }
    .error pre { margin: 4px 0; font: 14px monospace; }
    .catalog { display: flex; gap: 16px; margin-top: 12px; }
    .facets { width: 220px; flex: none; font-size: 13px; }
    .catalog > section { flex: 1; min-width: 0; }
    .facets ul { list-style: none; padding-left: 8px; margin: 4px 0 8px; }
    .facets summary { font-weight: 600; cursor: pointer; }
    .count { color: #777; }
    .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(196px, 1fr)); gap: 10px; }
    .card { display: flex; flex-direction: column; background: #fff; border: 1px solid #ddd; padding: 4px; color: inherit; text-decoration: none; font-size: 12px; }
    .card img, .card .missing { width: 192px; height: 192px; object-fit: contain; background: #000; }
    .card .missing { color: #aaa; display: flex; align-items: center; justify-content: center; }
    .card .file { font-weight: 600; overflow-wrap: anywhere; }
    .card .session { color: #777; }
    .pager { margin: 8px 0; }
    .controls { margin: 8px 0; display: flex; gap: 8px; align-items: center; }
    #viewer { width: 768px; height: 768px; overflow: auto; background: #000; position: relative; }
    #canvas { position: relative; }
    #tiles img, #overlay img { position: absolute; image-rendering: pixelated; }
    #viewer.overlay-off #overlay { display: none; }
    #prediction img { position: absolute; image-rendering: pixelated; }
    .columns { display: flex; gap: 24px; flex-wrap: wrap; }
    table { border-collapse: collapse; font-size: 13px; }
    th, td { text-align: left; padding: 2px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
    #tags td, #tags th { font-family: monospace; font-size: 12px; }
    .patches img { margin: 2px; background: #000; }
    .curve polyline.train, .curve span.train { stroke: #1f77b4; color: #1f77b4; stroke-width: 2; }
    .curve polyline.validation, .curve span.validation { stroke: #d62728; color: #d62728; stroke-width: 2; }
    .curve svg { background: #fff; border: 1px solid #ddd; }
    .matrix td { font-family: monospace; }
    """

    static let script = """
    "use strict";
    // Thumbnail progress in the header, from /progress.
    function pollProgress() {
      fetch("/progress").then(r => r.json()).then(p => {
        const el = document.getElementById("progress");
        if (!el) return;
        const building = Object.keys(p.pyramids).length;
        let text = p.thumbnailsTotal ? `thumbnails ${p.thumbnailsDone}/${p.thumbnailsTotal}` : "";
        if (p.thumbnailsFailed) text += ` (${p.thumbnailsFailed} failed)`;
        if (building) text += ` · building tiles of ${building} frame(s)`;
        el.textContent = text;
        if (p.thumbnailsDone + p.thumbnailsFailed < p.thumbnailsTotal || building) setTimeout(pollProgress, 1000);
      }).catch(() => {});
    }

    // The zoomable frame: tiles of the pyramid level nearest the zoom, the label overlay above.
    function startViewer(viewer) {
      const id = viewer.dataset.frame;
      const status = document.getElementById("viewer-status");
      const tiles = document.getElementById("tiles"), overlay = document.getElementById("overlay");
      const canvas = document.getElementById("canvas");
      let pyramid = null, scale = 1, hasOverlay = false, predictionKey = null;
      const prediction = document.createElement("div");
      prediction.id = "prediction";
      canvas.appendChild(prediction);
      function fitScale() {
        const top = pyramid.levels[0];
        return Math.min(viewer.clientWidth / top.width, viewer.clientHeight / top.height);
      }
      function render() {
        const full = pyramid.levels[0];
        let level = 0;
        while (level + 1 < pyramid.levels.length && Math.pow(2, level + 1) * scale <= 1.0001) level += 1;
        const info = pyramid.levels[level], factor = Math.pow(2, level) * scale, side = pyramid.tile;
        canvas.style.width = Math.round(full.width * scale) + "px";
        canvas.style.height = Math.round(full.height * scale) + "px";
        const layers = [[tiles, "tiles"], [overlay, "overlay"], [prediction, predictionKey && "prediction/" + predictionKey]];
        for (const [layer, kind] of layers) {
          layer.replaceChildren();
          if ((kind === "overlay" && !hasOverlay) || !kind) continue;
          for (let r = 0; r < info.rows; r++) for (let c = 0; c < info.columns; c++) {
            const img = document.createElement("img");
            img.loading = "lazy";
            img.src = `/frames/${id}/${kind}/${level}/${r}/${c}`;
            img.style.left = (c * side * factor) + "px";
            img.style.top = (r * side * factor) + "px";
            img.style.width = (Math.min(side, info.width - c * side) * factor) + "px";
            img.style.height = (Math.min(side, info.height - r * side) * factor) + "px";
            img.dataset.level = level;
            layer.appendChild(img);
          }
        }
        const label = document.getElementById("zoom-level");
        label.textContent = Math.abs(scale - 1) < 1e-6 ? "1:1" : Math.round(scale * 100) + "%";
        label.dataset.level = level;
        viewer.dataset.scale = scale;
      }
      function zoom(to) { scale = Math.max(Math.min(1, fitScale()) / 2, Math.min(8, to)); render(); }
      function load() {
        fetch(`/frames/${id}/pyramid`).then(r => r.json()).then(answer => {
          if (answer.error) { status.textContent = "cannot show the frame: " + answer.error; return; }
          if (!answer.ready) {
            status.textContent = `building tiles ${Math.round(answer.progress * 100)}%`;
            setTimeout(load, 400);
            return;
          }
          status.textContent = "";
          pyramid = answer.pyramid; hasOverlay = answer.overlay;
          scale = fitScale();
          render();
          viewer.dataset.ready = "true";
        }).catch(e => { status.textContent = "error: " + e; });
      }
      document.getElementById("zoom-in").onclick = () => pyramid && zoom(scale * 2);
      document.getElementById("zoom-out").onclick = () => pyramid && zoom(scale / 2);
      document.getElementById("zoom-fit").onclick = () => pyramid && zoom(fitScale());
      document.getElementById("zoom-one").onclick = () => pyramid && zoom(1);
      const toggle = document.getElementById("overlay-toggle");
      if (toggle) toggle.onchange = () => {
        viewer.classList.toggle("overlay-off", !toggle.checked);
        document.getElementById("overlay-state").textContent = toggle.checked ? "label shown" : "label hidden";
      };
      const predict = document.getElementById("predict");
      if (predict) predict.onclick = () => {
        const model = document.getElementById("model-select").value;
        const state = document.getElementById("prediction-state");
        state.textContent = "segmenting with " + model + "...";
        const ask = () => fetch(`/frames/${id}/prediction?model=${encodeURIComponent(model)}`).then(r => r.json()).then(answer => {
          if (answer.error) { state.textContent = "prediction failed: " + answer.error; return; }
          if (!answer.ready) { setTimeout(ask, 500); return; }
          predictionKey = answer.key;
          state.textContent = "prediction of " + model + " shown";
          if (pyramid) render();
        }).catch(e => { state.textContent = "error: " + e; });
        ask();
      };
      load();
    }

    document.addEventListener("DOMContentLoaded", () => {
      pollProgress();
      const viewer = document.getElementById("viewer");
      if (viewer) startViewer(viewer);
    });
    """
}
