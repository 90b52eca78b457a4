// A small SVG line chart (no dependencies): throttle % and data remaining over time for a few runs.

export interface Series {
  label: string;
  color: string;
  /** [seconds, value] */
  points: [number, number][];
  dashed?: boolean;
}

export interface Panel {
  title: string;
  yLabel: string;
  series: Series[];
}

const W = 720;
const H = 220;
const M = { l: 60, r: 150, t: 28, b: 36 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

function panelSvg(p: Panel, yOffset: number, xMax: number): string {
  const yMax = Math.max(1, ...p.series.flatMap((s) => s.points.map(([, v]) => v)));
  const x = (t: number): number => M.l + (t / xMax) * (W - M.l - M.r);
  const y = (v: number): number => yOffset + M.t + (1 - v / yMax) * (H - M.t - M.b);
  const parts: string[] = [];
  parts.push(`<text x="${M.l}" y="${yOffset + 18}" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
  parts.push(`<line x1="${M.l}" y1="${y(0)}" x2="${W - M.r}" y2="${y(0)}" stroke="#333"/>`);
  parts.push(`<line x1="${M.l}" y1="${y(0)}" x2="${M.l}" y2="${y(yMax)}" stroke="#333"/>`);
  for (let i = 0; i <= 4; i += 1) {
    const v = (yMax * i) / 4;
    parts.push(`<text x="${M.l - 6}" y="${y(v) + 4}" font-size="10" text-anchor="end">${v.toFixed(0)}</text>`);
    const t = (xMax * i) / 4;
    parts.push(`<text x="${x(t)}" y="${y(0) + 14}" font-size="10" text-anchor="middle">${t.toFixed(0)} s</text>`);
  }
  parts.push(`<text x="14" y="${(y(0) + y(yMax)) / 2}" font-size="11" transform="rotate(-90 14 ${(y(0) + y(yMax)) / 2})" text-anchor="middle">${esc(p.yLabel)}</text>`);
  p.series.forEach((s, i) => {
    const d = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''} points="${d}"/>`);
    parts.push(`<rect x="${W - M.r + 10}" y="${yOffset + M.t + i * 18}" width="12" height="4" fill="${s.color}"/>`);
    parts.push(`<text x="${W - M.r + 28}" y="${yOffset + M.t + i * 18 + 6}" font-size="11">${esc(s.label)}</text>`);
  });
  return parts.join('\n');
}

export function chartSvg(title: string, panels: Panel[]): string {
  const xMax = Math.max(1, ...panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([t]) => t))));
  const height = panels.length * H + 30;
  const body = panels.map((p, i) => panelSvg(p, 30 + i * H, xMax)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" font-size="15" text-anchor="middle" font-weight="bold">${esc(title)}</text>
${body}
</svg>
`;
}
