import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The UI is served by the coffer binary (same origin as the API). `npm run dev`
// proxies the API to a local coffer on :8080.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 800,
    // No inline scripts or data: modules: the CSP allows 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/s/': 'http://127.0.0.1:8080',
    },
  },
})
