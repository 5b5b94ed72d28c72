// Attention heads drawn as squares of cells: row i is the character that looks, column j the one it looks at.
// Shared by the explorer (taller serve) and the exported page (taller export), which writes this file into itself.

function heatColour(w) {  // 0 → white, 1 → indigo
  const t = Math.min(1, Math.max(0, w)) ** 0.7;
  return `rgb(${Math.round(255 - 200 * t)},${Math.round(255 - 190 * t)},${Math.round(255 - 30 * t)})`;
}

function drawHead(matrix, chars, room) {  // room: the most pixels the square may take
  const n = chars.length, cell = Math.max(3, Math.min(28, Math.floor(room / (n + 1))));
  const labels = cell >= 9, margin = labels ? cell + 4 : 0;
  const canvas = document.createElement("canvas");
  const ratio = window.devicePixelRatio || 1, size = margin + n * cell;
  canvas.width = canvas.height = size * ratio;
  canvas.style.width = canvas.style.height = size + "px";
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.fillStyle = "#fff";
  g.fillRect(0, 0, size, size);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) { g.fillStyle = heatColour(matrix[i][j]); g.fillRect(margin + j * cell, margin + i * cell, cell, cell); }
  if (labels) {
    g.fillStyle = "#374151";
    g.font = `${cell - 3}px ui-monospace, monospace`;
    g.textAlign = "center";
    g.textBaseline = "middle";
    chars.forEach((c, k) => {
      g.fillText(c, margin + k * cell + cell / 2, margin / 2);
      g.fillText(c, margin / 2, margin + k * cell + cell / 2);
    });
  }
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect();
    const i = Math.floor((e.clientY - rect.top - margin) / cell), j = Math.floor((e.clientX - rect.left - margin) / cell);
    $("att-info").textContent = i >= 0 && j >= 0 && i < n && j < n
      ? (j <= i ? `«${chars[i]}» (posición ${i + 1}) mira a «${chars[j]}» (posición ${j + 1}): ${pct(matrix[i][j])}`
                : "nadie mira hacia delante: el futuro está tapado")
      : "\u00a0";
  });
  return canvas;
}

function drawLayers(box, layers, chars) {  // every head of every layer, one row of squares per layer, into `box`
  const perRow = layers[0].length, room = Math.min(360, (box.clientWidth - 16 * (perRow - 1)) / perRow);
  layers.forEach((heads, l) => {
    const layer = document.createElement("div");
    layer.className = "layer";
    layer.innerHTML = `<h3>Capa ${l + 1}</h3><div class="heads"></div>`;
    heads.forEach((matrix, h) => {
      const head = document.createElement("div");
      head.className = "head";
      head.append(drawHead(matrix, chars, room), `cabeza ${h + 1}`);
      layer.querySelector(".heads").append(head);
    });
    box.append(layer);
  });
}
