import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// The web-server serves dist/ at / (SPA fallback to index.html); in development the Vite server
// proxies /api to it (http://127.0.0.1:3000, or API_PROXY_TARGET when the web-server runs elsewhere).
const apiTarget = process.env.API_PROXY_TARGET || 'http://127.0.0.1:3000';

export default defineConfig({
  plugins: [react()],
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: true,
    proxy: {
      '/api': { target: apiTarget, changeOrigin: false },
    },
  },
  preview: {
    host: '127.0.0.1',
    port: 4173,
    proxy: {
      '/api': { target: apiTarget, changeOrigin: false },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    restoreMocks: true,
  },
});
